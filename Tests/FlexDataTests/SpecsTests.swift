@testable import FlexData
import FlexTensor
import Foundation
import Testing

@Suite("dataset and split specs")
struct SpecsTests {
    @Test("split specs parse, name themselves and reject bad forms")
    func splits() throws {
        #expect(try SplitSpec.parse("dirichlet:0.3") == .dirichlet(0.3))
        #expect(try SplitSpec.parse("dirichlet:1e-1") == .dirichlet(0.1))
        #expect(try SplitSpec.parse("classes:2") == .classes(2))
        #expect(try SplitSpec.parse("iid") == .iid)
        for bad in ["dirichlet:", "dirichlet:0", "dirichlet:-1", "classes:0", "classes:x", "IID", ""] {
            expectError(.invalidArgument("unknown --split '\(bad)' (iid, dirichlet:α, classes:k)")) { () throws(DataError) in _ = try SplitSpec.parse(bad) }
        }
        for s in ["iid", "dirichlet:0.3", "dirichlet:2", "classes:2"] { #expect(try SplitSpec.parse(s).name == s) }
    }

    @Test("dataset specs parse and name themselves")
    func datasets() throws {
        #expect(try DatasetSpec.parse("synthetic") == .synthetic(alpha: 1, beta: 1))
        #expect(try DatasetSpec.parse("synthetic:0.5,1") == .synthetic(alpha: 0.5, beta: 1))
        #expect(try DatasetSpec.parse("csv:/x/digits.csv") == .csv("/x/digits.csv"))
        #expect(try DatasetSpec.parse("idx:/d/train-images-idx3-ubyte")
                == .idx(images: "/d/train-images-idx3-ubyte", labels: "/d/train-labels-idx1-ubyte"))
        #expect(try DatasetSpec.parse("idx:/d/a,/d/b") == .idx(images: "/d/a", labels: "/d/b"))
        #expect(try DatasetSpec.parse("cifar:/d/a.bin,/d/b.bin") == .cifar(["/d/a.bin", "/d/b.bin"]))
        expectError(.invalidArgument("--dataset synthetic:α,β")) { () throws(DataError) in _ = try DatasetSpec.parse("synthetic:1") }
        expectError(.invalidArgument("--dataset idx:IMAGES,LABELS (cannot derive the labels file)")) { () throws(DataError) in _ = try DatasetSpec.parse("idx:/d/x") }
        expectError(.invalidArgument("unknown --dataset 'mnist' (synthetic, csv:PATH, idx:PATH, cifar:PATH)")) { () throws(DataError) in _ = try DatasetSpec.parse("mnist") }

        #expect(DatasetSpec.synthetic(alpha: 1, beta: 1).name == "Synthetic(1,1)")
        #expect(DatasetSpec.synthetic(alpha: 0.5, beta: 1).name == "Synthetic(0.5,1)")
        #expect(DatasetSpec.csv("/x/y/digits.csv").name == "csv:digits.csv")
        #expect(DatasetSpec.csv("digits.csv").name == "csv:digits.csv")
        #expect(DatasetSpec.idx(images: "/d/train-images-idx3-ubyte/", labels: "").name == "idx:train-images-idx3-ubyte")
        #expect(DatasetSpec.cifar(["a"]).name == "cifar")
    }

    @Test("cifar:DIR stands for the directory's data_batch*.bin files, sorted")
    func cifarDirectory() throws {
        let dir = tempDir()
        for f in ["data_batch_2.bin", "data_batch_1.bin", "test_batch.bin", "readme.html"] { write([0], "\(dir)/\(f)") }
        #expect(try DatasetSpec.parse("cifar:\(dir)") == .cifar([dir]))
        #expect(try DatasetSpec.cifarFiles([dir]) == ["\(dir)/data_batch_1.bin", "\(dir)/data_batch_2.bin"])
        #expect(try DatasetSpec.cifarFiles(["a.bin", "b.bin"]) == ["a.bin", "b.bin"])
        let empty = tempDir()
        expectError(.invalidArgument("no data_batch_*.bin in \(empty)")) { () throws(DataError) in _ = try DatasetSpec.parse("cifar:\(empty)").load(clients: 1) }
    }

    @Test("paths and numbers as the specs print them")
    func text() {
        #expect(SpecText.lastPathComponent("/a/b.csv") == "b.csv")
        #expect(SpecText.lastPathComponent("b.csv") == "b.csv")
        #expect(SpecText.lastPathComponent("/a/b/") == "b")
        #expect(SpecText.lastPathComponent("/") == "/")
        #expect(SpecText.lastPathComponent("") == "")
        #expect(SpecText.replacing("x/train-images-idx3-ubyte", "images-idx3", with: "labels-idx1") == "x/train-labels-idx1-ubyte")
        #expect(SpecText.replacing("abc", "zz", with: "y") == "abc")
        #expect(SpecText.number(2.0) == "2" && SpecText.number(0.3) == "0.3")
    }

    @Test("synthetic spec loads and splits every sample once")
    func loadAndSplit() throws {
        let data = try DatasetSpec.synthetic(alpha: 1, beta: 1).load(clients: 4, syntheticMaxSamples: 200, seed: 3)
        var random = FlexRandom(seed: 1)
        for split in [SplitSpec.iid, .dirichlet(0.5), .classes(10)] {
            let parts = try split.partition(data, clients: 4, random: &random)
            #expect(parts.count == 4)
            #expect(parts.joined().sorted() == Array(0..<data.count), "\(split.name)")
        }
    }
}
