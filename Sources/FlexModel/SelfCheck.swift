import FlexTensor

/// A few milliseconds of training on a generated linear problem with both extractors: used by
/// the edge binary's self-test, and it makes the Embedded build specialise the generic trainer.
public enum ModelSelfCheck {
    /// Returns (first-epoch loss, last-epoch loss) of the mlp-moe and of the conv model.
    public static func run(seed: UInt64 = 1) -> (mlp: (Float, Float), conv: (Float, Float)) {
        var random = FlexRandom(seed: seed)
        let n = 256
        // mlp-moe on 16-d inputs, 4 classes: y = argmax of a random linear map
        let c = MoEConfig(inputDim: 16, hidden: 16, expertHidden: 16, classes: 4, experts: 3, topK: 2)
        let x = Tensor<Float>(zeros: Shape(rows: n, cols: 16))
        let y = Tensor<Int32>(shape: Shape(vector: n), repeating: 0)
        let w = Tensor<Float>(zeros: Shape(rows: 16, cols: 4))
        for i in 0..<w.count { w[i] = Float(random.nextGaussian()) }
        for i in 0..<x.count { x[i] = Float(random.nextGaussian()) }
        label(x, w, y)
        let trainer = LocalTrainer(config: c, capacity: 3, maxBatch: 32,
                                   options: TrainingOptions(learningRate: 0.05, momentum: 0.9, batchSize: 32, epochs: 5))
        trainer.extractor.initialise(random: &random)
        for s in 0..<3 { trainer.experts[s].initialise(random: &random) }
        let r1 = trainer.train(features: x, labels: y, random: &random)
        // conv model on 1 × 8 × 8 "images" with the same kind of labels
        let cc = MoEConfig(inputDim: 64, hidden: 16, expertHidden: 16, classes: 4, experts: 2, topK: 2)
        let xi = Tensor<Float>(zeros: Shape(rows: n, cols: 64))
        let wi = Tensor<Float>(zeros: Shape(rows: 64, cols: 4))
        for i in 0..<wi.count { wi[i] = Float(random.nextGaussian()) }
        for i in 0..<xi.count { xi[i] = Float(random.nextGaussian()) }
        label(xi, wi, y)
        let conv = LocalTrainer(config: cc, extractor: ConvExtractor(channels: 1, height: 8, width: 8, c1: 4, c2: 8,
                                                                     hidden: 16, maxBatch: 32),
                                capacity: 2, maxBatch: 32,
                                options: TrainingOptions(learningRate: 0.05, momentum: 0.9, batchSize: 32, epochs: 5))
        conv.extractor.initialise(random: &random)
        for s in 0..<2 { conv.experts[s].initialise(random: &random) }
        let r2 = conv.train(features: xi, labels: y, random: &random)
        return ((r1.firstEpochLoss, r1.lastEpochLoss), (r2.firstEpochLoss, r2.lastEpochLoss))
    }

    static func label(_ x: borrowing Tensor<Float>, _ w: borrowing Tensor<Float>, _ y: borrowing Tensor<Int32>) {
        let d = x.shape.cols, K = w.shape.cols
        for s in 0..<x.shape.rows {
            var best = 0
            var bestV = -Float.infinity
            for k in 0..<K {
                var v: Float = 0
                for j in 0..<d { v += x[s * d + j] * w[j * K + k] }
                if v > bestV { bestV = v; best = k }
            }
            y[s] = Int32(best)
        }
    }
}

