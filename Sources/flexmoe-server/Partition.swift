import ArgumentParser
import FlexData
import FlexServer
import FlexSimulation
import FlexTensor
import Foundation

/// `flexmoe-server partition`: splits a dataset into per-device shard files (FlexData).
struct PartitionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition", abstract: "Split a dataset into per-device shard files (client-<i>.shard).")

    @Option(help: "synthetic | synthetic:α,β | csv:PATH | idx:IMAGES[,LABELS] | cifar:FILE[,FILE...]|DIR (as for simulate).")
    var dataset = "synthetic"
    @Option(help: "iid | dirichlet:α | classes:k (as for simulate).")
    var split = "dirichlet:0.5"
    @Option(help: "Number of devices.")
    var clients = 8
    @Option(help: "Held-out fraction per device.")
    var testFraction = 0.2
    @Option(help: "Output directory.")
    var out: String
    @Option(help: "Seed.")
    var seed: UInt64 = 1
    @Option(help: "Stored dtype of the features: fp32 | fp16.")
    var dtype = "fp32"

    func run() throws {
        func fail(_ s: String) -> Never {
            FileHandle.standardError.write(Data("flexmoe-server partition: \(s)\n".utf8))
            Foundation.exit(2)
        }
        guard clients >= 1 else { fail("--clients must be ≥ 1") }
        guard let dt = DType.named(dtype), dt == .fp32 || dt == .fp16 else { fail("--dtype must be fp32 or fp16") }
        try? FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var random = FlexRandom(seed: seed)
        let data: Dataset
        let parts: [[Int]]
        do throws(SimulationError) {
            data = try SimulationDataset.parse(dataset).load(clients: clients, seed: seed)
            parts = try SimulationSplit.parse(split).partition(data, clients: clients, random: &random)
        } catch {
            fail(error.description)
        }
        do throws(DataError) {
            let paths = try ShardFile.writeAll(data, partition: parts, testFraction: testFraction, directory: out,
                                               dtype: dt, random: &random)
            let sizes = parts.map { String($0.count) }.joined(separator: ",")
            print("{\"shards\": \(paths.count), \"samples\": \(data.count), \"dim\": \(data.dim), \"classes\": \(data.classes), \"sizes\": [\(sizes)], \"dir\": \"\(out)\"}")
        } catch {
            fail("\(error)")
        }
    }
}
