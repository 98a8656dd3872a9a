import Foundation
import Testing
@testable import FacetEval
import FacetMasking
import FacetTestSupport

/// Runs `facet ARGS` (stdin closed; in `directory` when given) and returns (status, stdout, stderr).
func runFacet(_ args: [String], in directory: URL? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try facetExecutablePath())
    p.arguments = args
    if let directory { p.currentDirectoryURL = directory }
    var env = ProcessInfo.processInfo.environment
    env["OPENBLAS_NUM_THREADS"] = "1"
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Read both pipes before waiting so a full pipe cannot block the child.
    final class Buffer: @unchecked Sendable { var data = Data() }
    let errBuf = Buffer()
    let reader = Thread { errBuf.data = err.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errBuf.data, as: UTF8.self))
}

/// The `facet eval` commands end to end with the real dlib models ($FACET_MODELS, else ./models; the tests fail
/// when they are missing) on committed LFW images.
@Suite("facet eval command line", .serialized)
struct EvalCommandTests {
    @Test("eval lfw on a 12-image LFW: real embedder, masks rendered in memory, cache written then reused, JSON and HTML files")
    func lfwMini() throws {
        let fixture = try fixtureURL("lfwmini")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("facet-evallfw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let args = ["eval", "lfw", "--lfw", fixture.appendingPathComponent("lfw").path,
                    "--pairs", fixture.appendingPathComponent("pairs.txt").path, "--mask-split", "test",
                    "--demographics", fixture.appendingPathComponent("demographics").path,
                    "--cache", tmp.appendingPathComponent("cache").path,
                    "--id-min-images", "3", "--id-train", "1", "--id-held-out", "0.25", "--threads", "2"]
        let first = try runFacet(args + ["--json", tmp.appendingPathComponent("a.json").path,
                                         "--report", tmp.appendingPathComponent("a.html").path])
        #expect(first.status == 0, "stderr: \(first.err)")
        // Progress without a terminal: plain lines, the final 12/12 line once.
        #expect(first.err.contains("unmasked: embedding ["))
        #expect(first.err.components(separatedBy: "\n").filter { $0.hasPrefix("unmasked: embedding") && $0.contains("12/12") }.count == 1)
        #expect(first.err.contains("unmasked: 0 from the cache, 12 embedded"))
        #expect(first.err.contains("masked-test: 0 from the cache, 12 embedded"))

        let data = try Data(contentsOf: tmp.appendingPathComponent("a.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["pairs"] as? Int == 8)
        #expect(json["images"] as? Int == 12)
        #expect(json["impostor_pairs"] as? Int == 18)   // 3 x 3 cross-identity pairs in each fold
        let ver = try #require(json["verification"] as? [[String: Any]])
        #expect(ver.count == 6)
        let uu = try #require(ver.first { $0["comparison"] as? String == "unmasked-unmasked" && $0["method"] as? String == "baseline" })
        let v2 = try #require(uu["view2"] as? [String: Any])
        #expect(v2["accuracy"] as? Double == 1)   // four easy LFW identities
        #expect(uu["failed_to_template"] as? Int == 0)
        let fair = try #require(json["fairness"] as? [[String: Any]])
        #expect(fair.contains { $0["attribute"] as? String == "gender" } && fair.contains { $0["attribute"] as? String == "race" })
        let ident = try #require(json["identification"] as? [[String: Any]])
        #expect(ident.count == 8)
        // The mask-aware column is on mirror-averaged embeddings (by default, as the bundled matcher): computed with
        // each image's embedding (no separate pass) and cached.
        #expect(((json["notes"] as? [String]) ?? []).contains { $0.contains("averaged with its mirror image's") && $0.contains("24 computed in this run") })
        let md = try #require(json["mask_detection"] as? [String: Any])
        #expect(md["masked_images"] as? Int == 12)
        let html = try String(contentsOf: tmp.appendingPathComponent("a.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("masked–unmasked") && html.contains("Identification"))

        // The cache holds facet-embed-format lines plus mask lines; a second run embeds nothing and agrees.
        var table: [String: CacheEntry] = [:]
        try TemplateCache.read([tmp.appendingPathComponent("cache/masked-test.eval.jsonl")], into: &table)
        #expect(table.count == 12 && table.values.allSatisfy { $0.template != nil && $0.maskProbability != nil })
        #expect(table.values.allSatisfy { $0.mirrorAveraged?.embedding.count == 128 })
        let second = try runFacet(args + ["--json", "-"])
        #expect(second.status == 0, "stderr: \(second.err)")
        #expect(second.err.contains("unmasked: 12 from the cache, 0 embedded"))
        #expect(second.err.contains("masked-test: 12 from the cache, 0 embedded"))
        let again = try #require(try JSONSerialization.jsonObject(with: Data(second.out.utf8)) as? [String: Any])
        #expect(NSDictionary(dictionary: ["v": again["verification"]!]) == NSDictionary(dictionary: ["v": json["verification"]!]))
        #expect(NSDictionary(dictionary: ["v": again["identification"]!]) == NSDictionary(dictionary: ["v": json["identification"]!]))

        // --periocular on the filled cache: only the periocular embeddings are computed (one chip pass, no detector
        // rerun), appended, and the mask-aware column says it fused.
        let third = try runFacet(args + ["--periocular", "--json", "-"])
        #expect(third.status == 0, "stderr: \(third.err)")
        #expect(third.err.contains("unmasked: periocular [") && third.err.contains("masked-test: periocular ["))
        #expect(!third.err.contains("mask detector ["))
        let fused = try #require(try JSONSerialization.jsonObject(with: Data(third.out.utf8)) as? [String: Any])
        let notes = (fused["notes"] as? [String]) ?? []
        #expect(notes.contains { $0.contains("fuse the full and the periocular distance") && $0.contains("(24 computed in this run)") })
        table = [:]
        try TemplateCache.read([tmp.appendingPathComponent("cache/masked-test.eval.jsonl")], into: &table)
        #expect(table.values.allSatisfy { $0.periocular?.embedding.count == 128 && $0.maskProbability != nil })
        // From an empty cache with --periocular: each image is decoded once; the periocular embedding comes with the
        // embedding and the mask probability (no separate pass).
        let fresh = try runFacet(args.map { $0 == tmp.appendingPathComponent("cache").path ? tmp.appendingPathComponent("cache2").path : $0 }
                                 + ["--periocular", "--json", "-"])
        #expect(fresh.status == 0, "stderr: \(fresh.err)")
        #expect(fresh.err.contains("unmasked: 0 from the cache, 12 embedded"))
        #expect(!fresh.err.contains("periocular [") && !fresh.err.contains("mask detector ["))
        let freshJSON = try #require(try JSONSerialization.jsonObject(with: Data(fresh.out.utf8)) as? [String: Any])
        #expect(((freshJSON["notes"] as? [String]) ?? []).contains { $0.contains("(24 computed in this run)") })
        table = [:]
        try TemplateCache.read([tmp.appendingPathComponent("cache2/unmasked.eval.jsonl")], into: &table)
        #expect(table.count == 12 && table.values.allSatisfy { $0.periocular?.embedding.count == 128 && $0.maskProbability != nil })
    }

    @Test("eval pairs --json FILE and --report FILE write the files")
    func pairsFiles() throws {
        let dir = try fixtureURL("pairs")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("facet-evalpairs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let r = try runFacet(["eval", "pairs", "--root", dir.appendingPathComponent("images").path,
                              "--pairs", dir.appendingPathComponent("pairs_header.txt").path,
                              "--json", tmp.appendingPathComponent("p.json").path, "--report", tmp.appendingPathComponent("p.html").path])
        #expect(r.status == 0, "stderr: \(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: tmp.appendingPathComponent("p.json"))) as? [String: Any])
        #expect(json["pairs"] as? Int == 8 && json["accuracy"] as? Double == 1 && json["failed_to_template"] as? Int == 0)
        #expect(try String(contentsOf: tmp.appendingPathComponent("p.html"), encoding: .utf8).contains("<svg"))
        #expect(r.out.contains("accuracy"))   // the table still goes to standard output
        #expect(r.err.components(separatedBy: "\n").filter { $0.contains("8/8") }.count == 1)   // progress: last line once
    }

    @Test("embed --json: adapted means the head made the embedding; --frozen prints dlib's own embedding, as --no-mask does")
    func embedMaskFields() throws {
        // A TEST-masked LFW face (FacetMaskingTests' fixture; found at upsample 1) and an unmasked one.
        let masked = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FacetMaskingTests/Fixtures/masked/AJ_Lamas_0001.jpg").path
        let plain = try fixtureURL("lfwmini").appendingPathComponent("lfw/Serena_Williams/Serena_Williams_0001.jpg").path
        func faces(_ options: [String]) throws -> [[String: Any]] {
            let r = try runFacet(["embed", "--json"] + options + [masked, plain])
            #expect(r.status == 0, "\(r.err)")
            return try r.out.split(separator: "\n").map { line in
                let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let f = try #require(o["faces"] as? [[String: Any]])
                try #require(f.count == 1)
                return f[0]
            }
        }
        func vector(_ f: [String: Any], _ key: String) throws -> [Double] { try #require(f[key] as? [Double]) }
        let dlib = try faces(["--no-mask"]).map { try vector($0, "embedding") }
        let product = try faces([])
        #expect(product[0]["masked"] as? Bool == true && product[0]["adapted"] as? Bool == true)
        #expect(product[1]["masked"] as? Bool == false && product[1]["adapted"] as? Bool == false)
        for (f, d) in zip(product, dlib) {
            // Mirror-averaged (and for the masked face adapted): not dlib's embedding, which follows as frozen_embedding.
            let e = try vector(f, "embedding"), frozen = try vector(f, "frozen_embedding")
            #expect(zip(frozen, d).allSatisfy { abs($0 - $1) < 1e-6 })
            #expect(zip(e, d).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) > 1e-6)
        }
        let frozen = try faces(["--frozen"])
        #expect(frozen[0]["masked"] as? Bool == true)
        for (f, d) in zip(frozen, dlib) {
            #expect(f["adapted"] as? Bool == false && f["frozen_embedding"] == nil)
            #expect(zip(try vector(f, "embedding"), d).allSatisfy { abs($0 - $1) < 1e-6 })
        }
        // --masked-nose-y: the masked face's embedding comes from its re-cut chip (dlib's own follows), the other's not.
        let realigned = try faces(["--frozen", "--masked-nose-y", "0.5237"])
        let e0 = try vector(realigned[0], "embedding")
        #expect(zip(e0, dlib[0]).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) > 1e-6)
        #expect(zip(try vector(realigned[0], "frozen_embedding"), dlib[0]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(zip(try vector(realigned[1], "embedding"), dlib[1]).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(try runFacet(["embed", "--masked-nose-y", "1.5", plain]).status != 0)
    }

    /// `facet mask-train` end to end on the 12-image LFW: Tony Blair and Laura Bush (outside this test's pairs file) are
    /// the training people, with TRAIN masks in masked-train/ and a second draw in masked-train-s1/ (--extra-masked);
    /// Colin Powell and Serena Williams are View 2, embedded by `facet embed` with and without TEST masks.
    @Test("mask-train on a 12-image LFW: detector, head (trained on masked faces re-cut from their eyes), per-type and fused thresholds, report")
    func maskTrainMini() throws {
        let lfw = try fixtureURL("lfwmini").appendingPathComponent("lfw")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("facet-masktrain-\(UUID().uuidString)")
        let fm = FileManager.default
        let train = tmp.appendingPathComponent("train"), eval = tmp.appendingPathComponent("eval"), out = tmp.appendingPathComponent("out")
        try fm.createDirectory(at: train.appendingPathComponent("unmasked"), withIntermediateDirectories: true)
        try fm.createDirectory(at: eval, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        for person in ["Tony_Blair", "Laura_Bush"] {
            try fm.copyItem(at: lfw.appendingPathComponent(person), to: train.appendingPathComponent("unmasked/\(person)"))
        }
        let pairs = tmp.appendingPathComponent("pairs.txt")
        try Data("2\t1\nColin_Powell\t1\t2\nColin_Powell\t3\tSerena_Williams\t2\nSerena_Williams\t1\t3\nColin_Powell\t1\tSerena_Williams\t1\n".utf8).write(to: pairs)
        func ok(_ r: (status: Int32, out: String, err: String)) { #expect(r.status == 0, "stderr: \(r.err)") }
        let view2 = tmp.appendingPathComponent("view2")
        for person in ["Colin_Powell", "Serena_Williams"] {
            try fm.createDirectory(at: view2, withIntermediateDirectories: true)
            try fm.copyItem(at: lfw.appendingPathComponent(person), to: view2.appendingPathComponent(person))
        }
        ok(try runFacet(["mask-dataset", "--in", train.appendingPathComponent("unmasked").path, "--out", train.appendingPathComponent("masked-train").path,
                         "--split", "train", "--centred"]))
        ok(try runFacet(["mask-dataset", "--in", train.appendingPathComponent("unmasked").path, "--out", train.appendingPathComponent("masked-train-s1").path,
                         "--split", "train", "--centred", "--seed", "1"]))
        ok(try runFacet(["mask-dataset", "--in", view2.path, "--out", eval.appendingPathComponent("masked-test").path, "--split", "test", "--centred"]))
        func embed(_ root: URL, into name: String) throws {
            let images = try fm.subpathsOfDirectory(atPath: root.path).filter { $0.hasSuffix(".jpg") }.sorted().map { "./" + $0 }
            #expect(images.count == 6)
            let r = try runFacet(["embed", "--json", "--frozen", "--no-retry"] + images, in: root)
            ok(r)
            try Data(r.out.utf8).write(to: eval.appendingPathComponent(name))
        }
        try embed(view2, into: "unmasked.jsonl")
        try embed(eval.appendingPathComponent("masked-test"), into: "masked-test.jsonl")

        let r = try runFacet(["mask-train", "--train", train.path, "--eval", eval.path, "--lfw", lfw.path, "--pairs", pairs.path,
                              "--out-dir", out.path, "--detector-held-out", "1", "--epochs", "2", "--extra-masked", "masked-train-s1",
                              "--periocular", "bundled", "--impostor-images", "0"])
        ok(r)
        #expect(r.err.contains("training people: 2, images 6"))
        // Six TRAIN-masked faces in each of the two draws; the head's inputs are re-aligned (the bundled nose height).
        #expect(r.err.components(separatedBy: "\n").contains { $0.hasPrefix("head inputs re-aligned") && $0.contains("12/12") })
        let detector = try MaskDetector(contentsOf: out.appendingPathComponent("mask-detector-v4.json"))
        #expect(detector.version == 4)
        let head = try UnmaskingHead(contentsOf: out.appendingPathComponent("unmasking-head-v1.json"))
        #expect(head.notes["data"]?.contains("12 TRAIN-masked and 6 unmasked faces of 2 LFW people outside pairs.txt") == true)
        #expect(head.notes["data"]?.contains("re-cut from their eyes (nose height 0.52)") == true)
        #expect(head.notes["epochs"] == "2")
        let thresholds = try ComparisonThresholds(contentsOf: out.appendingPathComponent("comparison-thresholds-v3.json"))
        let fusion = try PeriocularFusion(contentsOf: out.appendingPathComponent("periocular-fusion-v2.json"))
        for t in [thresholds, try #require(fusion.thresholds)] {
            #expect(Set(t.maxDistance.keys) == ["unmasked-unmasked", "masked-unmasked", "masked-masked"])
            #expect(t.maxDistance.values.allSatisfy { $0 > 0 && $0 < 2 })
        }
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any])
        #expect(report["detector"] != nil)
    }

    @Test("activations (hidden research helper): per face 1,024 last-block activations and the descriptor of the same pass, facet embed's embedding once unit-length")
    func activationsDump() throws {
        let lfw = try fixtureURL("lfwmini").appendingPathComponent("lfw")
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("facet-acts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let images = ["./Tony_Blair/Tony_Blair_0001.jpg", "./Laura_Bush/Laura_Bush_0001.jpg"]
        let embedded = try runFacet(["embed", "--json", "--frozen", "--no-retry"] + images, in: lfw)
        #expect(embedded.status == 0, "\(embedded.err)")
        try Data(embedded.out.utf8).write(to: tmp.appendingPathComponent("e.jsonl"))
        let r = try runFacet(["activations", "--json", tmp.appendingPathComponent("e.jsonl").path, "--root", lfw.path,
                              "--out", tmp.appendingPathComponent("a").path])
        #expect(r.status == 0, "\(r.err)")
        let keys = try String(contentsOf: tmp.appendingPathComponent("a.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(keys == images)
        let data = try Data(contentsOf: tmp.appendingPathComponent("a.f32"))
        #expect(data.count == 2 * 1152 * 4)
        let floats = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        for (i, line) in embedded.out.split(separator: "\n").enumerated() {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let face = try #require((o["faces"] as? [[String: Any]])?.first)
            let e = try #require(face["embedding"] as? [Double])
            let d = floats[(i * 1152 + 1024) ..< (i * 1152 + 1152)]   // the network's raw output; embed prints it unit-length
            let norm = d.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(zip(d, e).allSatisfy { abs(Double($0) / norm - $1) < 1e-5 })
            #expect(floats[(i * 1152) ..< (i * 1152 + 1024)].contains { $0 != 0 })
        }
        // --recut moves the chip: another descriptor.
        let moved = try runFacet(["activations", "--json", tmp.appendingPathComponent("e.jsonl").path, "--root", lfw.path,
                                  "--out", tmp.appendingPathComponent("b").path, "--recut", "0.45"])
        #expect(moved.status == 0)
        let other = try Data(contentsOf: tmp.appendingPathComponent("b.f32"))
        #expect(other.count == data.count && other != data)
        // --block 12: the last block's input, 256 × 4×4, with the same descriptor after it.
        let earlier = try runFacet(["activations", "--json", tmp.appendingPathComponent("e.jsonl").path, "--root", lfw.path,
                                    "--out", tmp.appendingPathComponent("c").path, "--block", "12"])
        #expect(earlier.status == 0)
        let wide = try Data(contentsOf: tmp.appendingPathComponent("c.f32")).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(wide.count == 2 * (4096 + 128))
        #expect(zip(wide[4096 ..< 4224], floats[1024 ..< 1152]).allSatisfy { abs($0 - $1) < 1e-5 })
        // Bad options are usage errors, not traps; a block the network does not have is an error.
        for bad in [["--shards", "0"], ["--shard", "2", "--shards", "2"], ["--recut", "1.5"], ["--block", "40"]] {
            let r = try runFacet(["activations", "--json", tmp.appendingPathComponent("e.jsonl").path, "--root", lfw.path,
                                  "--out", tmp.appendingPathComponent("d").path] + bad)
            #expect(r.status != 0 && r.status < 128, "\(bad): \(r.status)")
        }
    }
}
