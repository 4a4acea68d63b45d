import ResNetKit

extension OneDNNBackend {
    /// Returns the kernel in the layout oneDNN's convolution picks for this shape, so that
    /// forward and backward run without reordering it on every step.
    public func prepareConvolutionWeights(_ weights: Tensor, geometry: ConvolutionGeometry, batch: Int) throws
        -> Tensor
    {
        try preferredLayoutCopy(of: weights, geometry: geometry, batch: batch)
    }
}
