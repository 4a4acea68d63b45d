import XCTest
import ResNetKit

final class ShapeTests: XCTestCase {
    func testElementCount() {
        XCTAssertEqual(TensorShape(2, 3, 4, 5).elementCount, 120)
    }
}
