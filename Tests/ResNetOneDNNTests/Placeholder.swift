import XCTest
import ResNetOneDNN
