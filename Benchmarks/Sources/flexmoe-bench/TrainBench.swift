import ArgumentParser
import FlexModel
import FlexTensor
import Foundation

/// `flexmoe-bench train`: samples per second of one local-training SGD step of the mlp-moe model,
/// same flags and same workload as shared/peers/numpy_moe.py (plain SGD, contiguous minibatches of a
/// random linear-labelled dataset, 20 warm-up steps). One JSON line.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Local training throughput (samples/s) of the mlp-moe trainer, like numpy_moe.py.")

    @Option var d = 60
    @Option var h = 64
    @Option var f = 128
    @Option var experts = 8
    @Option var assigned = 2
    @Option var topk = 2
    @Option var classes = 10
    @Option var batch = 32
    @Option var steps = 500
    @Option var lr: Float = 0.05
    @Option var samples = 4096
    @Option var seed: UInt64 = 0
    @Option(help: "SGD momentum (the peer uses plain SGD: 0).") var momentum: Float = 0

    func run() throws {
        // plain locals: ArgumentParser's property wrappers are slow to read in loops
        let d = d, classes = classes, samples = samples, batch = batch, steps = steps, assigned = assigned
        guard samples > batch, assigned >= 1, assigned <= experts else { throw ValidationError("bad sizes") }
        var random = FlexRandom(seed: seed)
        let X = Tensor<Float>(zeros: Shape(rows: samples, cols: d))
        let W = Tensor<Float>(zeros: Shape(rows: d, cols: classes))
        let y = Tensor<Int32>(shape: Shape(vector: samples), repeating: 0)
        for i in 0..<X.count { X[i] = Float(random.nextGaussian()) }
        for i in 0..<W.count { W[i] = Float(random.nextGaussian()) }
        for s in 0..<samples {
            var best = 0, bestV = -Float.infinity
            for c in 0..<classes {
                var v: Float = 0
                for j in 0..<d { v += X[s * d + j] * W[j * classes + c] }
                if v > bestV { bestV = v; best = c }
            }
            y[s] = Int32(best)
        }
        let config = MoEConfig(inputDim: d, hidden: h, expertHidden: f, classes: classes, experts: experts, topK: topk)
        let options = TrainingOptions(learningRate: lr, momentum: momentum, weightDecay: 0, batchSize: batch)
        let trainer = LocalTrainer(config: config, capacity: assigned, maxBatch: batch, options: options)
        let trainerBytes = LocalTrainer<MLPExtractor>.plan(config: config, capacity: assigned, maxBatch: batch).total
        trainer.extractor.initialise(random: &random)
        let gate = ClientGate(config)
        gate.initialise(random: &random)
        trainer.assign(Array(0..<assigned))
        for s in 0..<assigned { trainer.experts[s].initialise(random: &random) }
        trainer.loadGate(from: gate)
        trainer.measuring = true
        let xp = X.ptr, yp = y.ptr
        for i in 0..<20 {
            let j = (i * batch) % (samples - batch)
            trainer.step(xp + j * d, labels: yp + j, rows: batch)
        }
        var loss: Float = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<steps {
            let j = (i * batch) % (samples - batch)
            loss = trainer.step(xp + j * d, labels: yp + j, rows: batch)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = Double(steps * batch) / seconds
        print("{\"samples_per_s\": \((rate * 10).rounded() / 10), \"final_loss\": \((loss * 10000).rounded() / 10000), "
              + "\"peak_rss_kib\": \(peakRSSKiB()), \"trainer_bytes\": \(trainerBytes)}")
    }

    func peakRSSKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }
}
