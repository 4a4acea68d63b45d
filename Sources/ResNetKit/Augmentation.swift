/// Random changes to training images that keep their labels: a random crop of the image padded
/// with zeros, then a random horizontal flip, as in the common CIFAR-10 recipe (pad 4, crop
/// 32x32, flip).
///
/// The random values of a batch come from the seed, the epoch and the step alone, so a run is
/// reproducible and does not depend on the thread that prepares the batch.
public struct Augmentation: Sendable, Equatable {
    /// Zeros added on every side before cropping back to the input size; 0 turns the crop off.
    public var padding: Int
    /// Mirrors the columns of half of the images, chosen at random.
    public var horizontalFlip: Bool

    public init(padding: Int, horizontalFlip: Bool = true) {
        self.padding = padding
        self.horizontalFlip = horizontalFlip
    }

    /// Returns the padding `resnet train --augment` uses: one eighth of the smaller image side,
    /// rounded, and at least 1 but less than that side. That is 4 for 28x28 and 32x32 images,
    /// as the CIFAR recipe pads, and 0 (flip only) for images one pixel high or wide.
    public static func defaultPadding(height: Int, width: Int) -> Int {
        let side = min(height, width)
        return min(max(1, (side + 4) / 8), side - 1)
    }

    /// The position of one image's crop in its padded copy, and whether the crop is mirrored.
    public struct Placement: Sendable, Equatable {
        /// Row of the padded image that becomes row 0 of the crop, from 0 to 2 * padding.
        public var top: Int
        /// Column of the padded image that becomes column 0 of the crop, from 0 to 2 * padding.
        public var left: Int
        public var flipped: Bool

        public init(top: Int, left: Int, flipped: Bool) {
            self.top = top
            self.left = left
            self.flipped = flipped
        }
    }

    /// Throws unless `sampleShape` is an image shape CxHxW.
    public func validate(for sampleShape: TensorShape) throws {
        guard sampleShape.rank == 3 else {
            throw BackendError("augmentation", "crop and flip need images of shape CxHxW, got samples of shape \(sampleShape)")
        }
        guard padding >= 0 else {
            throw BackendError("augmentation", "padding must be at least 0, got \(padding)")
        }
    }

    /// Draws the placements of the `count` images of one step, in batch order.
    public func placements(count: Int, seed: UInt64, epoch: Int, step: Int) -> [Placement] {
        // A seed of its own, so that the draws do not repeat the epoch's shuffle, which uses
        // `seed` with stream `epoch`.
        var generator = SeededGenerator(
            seed: seed ^ 0x6175_676D_656E_7421, stream: UInt64(truncatingIfNeeded: epoch) << 32 | UInt64(truncatingIfNeeded: step))
        let offsets = UInt64(2 * padding + 1)
        return (0..<count).map { _ in
            let top = Int(generator.next() % offsets)
            let left = Int(generator.next() % offsets)
            let flipped = horizontalFlip && generator.next() >> 63 == 1
            return Placement(top: top, left: left, flipped: flipped)
        }
    }

    /// Writes the crop of `image` (CxHxW, canonical order) at `placement` into `output`, which
    /// has the same shape. Pixels that fall in the padding are zero.
    public static func apply(
        _ placement: Placement, padding: Int, to image: UnsafeBufferPointer<Float>, shape: TensorShape,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        let (channels, height, width) = (shape[0], shape[1], shape[2])
        precondition(image.count >= shape.elementCount && output.count >= shape.elementCount, "buffers smaller than \(shape)")
        // Output pixel (y, x) comes from input pixel (y + rowShift, x' + columnShift), where x'
        // is x, or width - 1 - x when flipped.
        let rowShift = placement.top - padding
        let columnShift = placement.left - padding

        for channel in 0..<channels {
            let plane = channel * height * width
            for y in 0..<height {
                let sourceRow = y + rowShift
                let target = plane + y * width
                guard (0..<height).contains(sourceRow) else {
                    for x in 0..<width { output[target + x] = 0 }
                    continue
                }
                let source = plane + sourceRow * width
                for x in 0..<width {
                    let sourceColumn = (placement.flipped ? width - 1 - x : x) + columnShift
                    output[target + x] = (0..<width).contains(sourceColumn) ? image[source + sourceColumn] : 0
                }
            }
        }
    }
}
