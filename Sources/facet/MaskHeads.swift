import ArgumentParser
import FacetEval
import FacetFace
import FacetMasking
import Foundation

/// `facet mask-heads`: ten unmasking heads, head k trained on every person outside fold k (`HeadFolds`), plus one on
/// everybody (the product head), from `facet embed --json` files of unmasked and TRAIN-masked images.
struct MaskHeadsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask-heads",
        abstract: "Train per-fold unmasking heads (for honest 10-fold numbers in facet eval lfw) and one on all people.",
        discussion: """
        --unmasked and --masked are `facet embed --json` outputs (paths ./Name/Name_000i.jpg; the face nearest the \
        centre is used, images without a face are skipped); --masked must be TRAIN-family masks only. --face-cache \
        adds the centred training faces of `facet mask-train` (keys centred:.../unmasked/P and centred:.../masked-train/P). \
        Writes unmasking-head-fold-K.json (K = 0…9) and unmasking-head-all.json to --out-dir.
        """)

    @Option(help: "LFW view 2 pairs file (defines the folds).") var pairs: String
    @Option(parsing: .upToNextOption, help: "facet embed --json files of unmasked images.") var unmasked: [String]
    @Option(parsing: .upToNextOption, help: "facet embed --json files of TRAIN-masked images.") var masked: [String]
    @Option(help: "facet mask-train face cache to add (optional).") var faceCache: String?
    @Option(help: "Output folder.") var outDir: String
    @Option(help: "Training epochs.") var epochs = 20
    @Option(help: "Hidden units.") var hidden = 128
    @Option(help: "Triplet margin (squared distance between unit vectors).") var margin = 0.5
    @Option(help: "Weight of the identity term for unmasked inputs.") var identityWeight = 1.0
    @Option(help: "Adam learning rate.") var learningRate = 1e-3
    @Option(help: "Groups of folds, one head each (10 = one head per fold; 2 = folds 0,2,4,6,8 vs 1,3,5,7,9).") var groups = 10
    @Flag(help: "Train only the head on all people.") var allOnly = false

    func run() throws {
        func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
        let lfwPairs = try LFWPairs.load(contentsOf: URL(fileURLWithPath: pairs))
        let folds = HeadFolds(pairs: lfwPairs, groups: groups)
        var plain: [(person: String, e: [Float])] = [], mask: [(person: String, e: [Float])] = []
        for f in unmasked { for (k, v) in try loadEmbedLines(f) { if let v { plain.append((personName(k), v.embedding)) } } }
        for f in masked { for (k, v) in try loadEmbedLines(f) { if let v { mask.append((personName(k), v.embedding)) } } }
        if let faceCache {
            let c = FaceStoreCache(url: URL(fileURLWithPath: faceCache))
            for (key, e) in c.entries where key.hasPrefix("centred:") {
                let parts = key.split(separator: "/").map(String.init)
                guard parts.count >= 3 else { continue }
                let person = parts[parts.count - 2], root = parts[parts.count - 3]
                if root == "unmasked" { plain.append((person, e.embedding)) } else if root.hasPrefix("masked-train") { mask.append((person, e.embedding)) }
            }
        }
        // Deterministic order whatever the dictionaries did.
        plain.sort { $0.person != $1.person ? $0.person < $1.person : $0.e.lexicographicallyPrecedes($1.e) }
        mask.sort { $0.person != $1.person ? $0.person < $1.person : $0.e.lexicographicallyPrecedes($1.e) }
        log("faces: \(plain.count) unmasked, \(mask.count) TRAIN-masked, \(Set(mask.map(\.person)).count) people with a masked face")
        let out = URL(fileURLWithPath: outDir)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var options = UnmaskingHeadTrainer.Options()
        options.hidden = hidden; options.epochs = epochs; options.margin = margin
        options.identityWeight = identityWeight; options.learningRate = learningRate
        let targets: [Int?] = allOnly ? [nil] : (0..<folds.groups).map { Optional($0) } + [nil]
        for k in targets {
            let keep: (String) -> Bool = { p in k.map { !folds.groups(p).contains($0) } ?? true }
            var ids: [String: Int] = [:]
            func id(_ p: String) -> Int { if let i = ids[p] { return i }; ids[p] = ids.count; return ids.count - 1 }
            let m = mask.filter { keep($0.person) }, u = plain.filter { keep($0.person) }
            let set = UnmaskingTrainingSet(masked: m.map(\.e), maskedIdentity: m.map { id($0.person) },
                                           unmasked: u.map(\.e), unmaskedIdentity: u.map { id($0.person) })
            let label = k.map { "group \($0)" } ?? "all"
            guard let r = UnmaskingHeadTrainer.train(set, options: options, embeddingModel: "dlib_face_recognition_resnet_model_v1", progress: { l in
                if l.epoch == 1 || l.epoch % 5 == 0 { log(String(format: "%@ epoch %d: loss %.4f", label, l.epoch, l.loss)) }
            }) else { throw ValidationError("no training data for \(label)") }
            var h = r.head
            h.notes = ["data": "\(m.count) TRAIN-masked and \(u.count) unmasked faces of \(Set(u.map(\.person)).count) LFW people"
                           + (k.map { " (everyone outside the View 2 folds f with f % \(folds.groups) == \($0); people outside pairs.txt by pseudo-fold stableHash(name) % 10)" } ?? " (all)"),
                       "loss": "self-restrained triplet (margin \(margin)) + identity \(identityWeight) on unmasked inputs",
                       "epochs": "\(epochs)", "final_loss": String(format: "%.4f", r.log.last?.loss ?? 0),
                       "command": "facet mask-heads (scripts/masks/heads.sh)"]
            try h.write(to: out.appendingPathComponent(k.map { HeadFolds.fileName(fold: $0) } ?? "unmasking-head-all.json"))
            log("\(label): \(m.count) masked / \(u.count) unmasked faces, final loss \(String(format: "%.4f", r.log.last?.loss ?? 0))")
        }
    }
}
