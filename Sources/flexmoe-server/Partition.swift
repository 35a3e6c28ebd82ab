import ArgumentParser
import FlexData
import FlexTensor
import Foundation

/// `flexmoe-server partition`: splits a dataset into per-device shard files (FlexData).
struct PartitionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition", abstract: "Split a dataset into per-device shard files (client-<i>.shard).")

    @Option(help: "synthetic | csv | idx | cifar")
    var source = "synthetic"
    @Option(help: "Input files: csv: one file; idx: IMAGES,LABELS; cifar: comma-separated batch files.")
    var input: String?
    @Option(help: "Number of devices.")
    var clients = 8
    @Option(help: "iid | dirichlet | classes (synthetic data is per-device by construction when 'natural').")
    var scheme = "dirichlet"
    @Option(help: "Dirichlet concentration α.")
    var alpha = 0.5
    @Option(help: "Classes per client for --scheme classes.")
    var k = 2
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
        do throws(DataError) {
            let data: Dataset
            let inputs = input.map { $0.split(separator: ",").map(String.init) } ?? []
            switch source {
            case "synthetic": data = SyntheticGenerator(seed: seed).pooled(devices: clients)
            case "csv":
                guard inputs.count == 1 else { fail("--input FILE.csv") }
                data = try CSVLoader.load(inputs[0])
            case "idx":
                guard inputs.count == 2 else { fail("--input IMAGES,LABELS") }
                data = try IDXLoader.load(images: inputs[0], labels: inputs[1])
            case "cifar":
                guard !inputs.isEmpty else { fail("--input BATCH[,BATCH...]") }
                data = try CIFARLoader.load(inputs)
            default: fail("unknown --source '\(source)'")
            }
            let parts: [[Int]]
            switch scheme {
            case "iid": parts = try Partitioner.iid(count: data.count, clients: clients, random: &random)
            case "dirichlet": parts = try Partitioner.dirichlet(labels: data.labels, classes: data.classes, clients: clients,
                                                                alpha: alpha, random: &random)
            case "classes": parts = try Partitioner.classesPerClient(labels: data.labels, classes: data.classes, clients: clients,
                                                                     k: k, random: &random)
            default: fail("unknown --scheme '\(scheme)' (iid, dirichlet, classes)")
            }
            let paths = try ShardFile.writeAll(data, partition: parts, testFraction: testFraction, directory: out,
                                               dtype: dt, random: &random)
            let sizes = parts.map { String($0.count) }.joined(separator: ",")
            print("{\"shards\": \(paths.count), \"samples\": \(data.count), \"dim\": \(data.dim), \"classes\": \(data.classes), \"sizes\": [\(sizes)], \"dir\": \"\(out)\"}")
        } catch {
            fail("\(error)")
        }
    }
}
