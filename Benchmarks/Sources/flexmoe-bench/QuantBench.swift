import ArgumentParser
import FlexTensor

/// `flexmoe-bench quant`: quantise / dequantise throughput per dtype, in GB/s of fp32 data.
struct QuantBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quant", abstract: "Quantise/dequantise throughput (GB/s of fp32) per dtype.")

    @Option(help: "Rows of the test matrix.") var rows = 1024
    @Option(help: "Columns of the test matrix.") var cols = 1024
    @Option(help: "Timed runs per figure (the median is reported).") var runs = 9

    func run() throws {
        var random = FlexRandom(seed: 1)
        let source = Tensor<Float>(zeros: Shape(rows: rows, cols: cols))
        for i in 0..<source.count { source[i] = Float(random.nextGaussian()) }
        let back = Tensor<Float>(zeros: source.shape)
        let gigabytes = Double(source.count * 4) / 1e9
        var figures: [String: Any] = ["bench": "quant", "shape": [rows, cols], "runs": runs]
        for dtype in DType.allCases {
            let q = QuantizedTensor(dtype: dtype, shape: source.shape)
            let quantise = Bench.median(runs: runs) { Quantizer.quantize(source, into: q) }
            var stochasticRandom = FlexRandom(seed: 2)
            let stochastic = Bench.median(runs: runs) {
                Quantizer.quantizeStochastic(source, into: q, random: &stochasticRandom)
            }
            let dequantise = Bench.median(runs: runs) { Quantizer.dequantize(q, into: back) }
            figures[dtype.name] = [
                "quantize_gb_s": Bench.round(gigabytes / quantise),
                "quantize_stochastic_gb_s": Bench.round(gigabytes / stochastic),
                "dequantize_gb_s": Bench.round(gigabytes / dequantise),
            ]
        }
        Bench.emit(figures)
    }
}
