import ArgumentParser
import FlexData
import FlexServer
import FlexTensor
import Foundation

/// `flexmoe-server partition`: splits a dataset into per-device shard files (FlexData).
struct PartitionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition", abstract: "Split a dataset into per-device shard files (client-<i>.shard).")

    enum Defaults: DataDefaults {
        static let split = SplitSpec.dirichlet(0.5)
        static let seedHelp = "Seed."
    }

    @OptionGroup var data: DataOptions<Defaults>
    @Option(help: "Number of devices.")
    var clients = 8
    @Option(help: "Output directory.")
    var out: String
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
        var random = FlexRandom(seed: data.seed)
        let dataset: Dataset
        do throws(DataError) {
            dataset = try data.dataset.load(clients: clients, seed: data.seed)
        } catch {
            fail("loading \(data.dataset.name): \(error)")
        }
        do throws(DataError) {
            let parts = try data.split.partition(dataset, clients: clients, random: &random)
            let paths = try ShardFile.writeAll(dataset, partition: parts, testFraction: data.testFraction, directory: out,
                                               dtype: dt, random: &random)
            let sizes = parts.map { String($0.count) }.joined(separator: ",")
            print("{\"shards\": \(paths.count), \"samples\": \(dataset.count), \"dim\": \(dataset.dim), \"classes\": \(dataset.classes), \"sizes\": [\(sizes)], \"dir\": \"\(out)\"}")
        } catch {
            fail("\(error)")
        }
    }
}
