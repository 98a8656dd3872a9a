import ArgumentParser
import FacetEval
import FacetFace
import FacetImaging
import Foundation

/// `facet eval`: evaluation protocols.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate the face pipeline on standard protocols.",
        subcommands: [EvalPairs.self, EvalLFW.self])
}

/// `facet eval pairs`: verification on an LFW-format pairs file.
struct EvalPairs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairs",
        abstract: "Verification on an LFW-format pairs file: 10-fold accuracy, TAR@FAR, EER, failures to template.",
        discussion: """
            Images are ROOT/name/name_000i.EXT. Pairs files with a header ('10 300' or '1100') keep their folds; \
            a file without a header (or a single fold) is cut into min(10, matched, mismatched) stratified folds. \
            Each distinct image is embedded once (face nearest the image centre; if no face is detected, a fixed \
            central crop is aligned and embedded instead and the image counts as failed_to_template). \
            Score = negative Euclidean distance of L2-normalised embeddings. A missing or unreadable image stops \
            the run with its path (exit 1). --json FILE writes {"pairs", "accuracy", "accuracy_std", \
            "tar_at_far": {"0.01", "0.001"}, "eer", "failed_to_template"} to FILE ('-': standard output, \
            instead of the table); --report FILE writes the HTML report. Both files are written before the table.
            """)

    @Option(help: "LFW image root (ROOT/name/name_000i.EXT).") var root: String
    @Option(help: "Pairs file (LFW format, with or without the count header).") var pairs: String
    @Option(help: "Image extension: jpg or png.") var ext: String = "jpg"
    @Option(help: "Write the JSON summary to this file ('-': print it instead of the table).") var json: String?
    @Option(help: "Write a self-contained HTML report (ROC, DET, table) here.") var report: String?
    @Option(help: "Times the detector doubles the image first (0-4).") var upsample = 0
    @Option(help: "Folder with the dlib model files (default: $FACET_MODELS, else ./models).") var models: String?
    @Option(help: "Use at most N pairs (half matched, half mismatched, spread over the folds).") var limit: Int?
    @Option(help: "Worker threads for embedding (OpenBLAS is set to 1 thread when > 1).") var threads: Int = 2

    func validate() throws {
        guard ["jpg", "png"].contains(ext) else { throw ValidationError("--ext must be jpg or png") }
        guard (0...DlibFaceEmbedder.maxUpsample).contains(upsample) else {
            throw ValidationError("--upsample must be between 0 and \(DlibFaceEmbedder.maxUpsample)")
        }
        if let l = limit, l < 2 { throw ValidationError("--limit must be at least 2") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be in 1...64") }
    }

    func run() throws {
        func fail(_ message: String, code: Int32) -> ExitCode {
            FileHandle.standardError.write(Data("facet eval pairs: \(message)\n".utf8))
            return ExitCode(code)
        }
        let parsed: LFWPairs
        do { parsed = try PairsEvaluation.loadPairs(URL(fileURLWithPath: pairs), limit: limit) } catch {
            throw fail("\(error)", code: 1)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw fail("--root \(root) is not a directory", code: 1)
        }
        let embedder: DlibFaceEmbedder
        do { embedder = try DlibFaceEmbedder(locator: FaceModelLocator(directory: models)) } catch {
            throw fail("cannot load models: \(error)", code: 2)
        }
        let outcome: PairsEvaluation.Outcome
        do {
            let progress = ProgressReporter(total: parsed.images.count, label: "embedding")
            outcome = try PairsEvaluation.run(pairs: parsed, root: URL(fileURLWithPath: root), ext: ext, embedder: embedder,
                                              upsample: upsample, threads: threads, progress: progress)
        } catch {
            throw fail("\(error)", code: 1)
        }
        if let report {
            let command = (["facet"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
            let html = outcome.report(title: "facet eval pairs: \((pairs as NSString).lastPathComponent)", command: command).html()
            do { try Data(html.utf8).write(to: URL(fileURLWithPath: report), options: .atomic) } catch {
                throw fail("cannot write report \(report): \(error.localizedDescription)", code: 1)
            }
            FileHandle.standardError.write(Data("facet eval pairs: report written to \(report)\n".utf8))
        }
        if let json, json != "-" {
            do { try Data((outcome.json() + "\n").utf8).write(to: URL(fileURLWithPath: json), options: .atomic) } catch {
                throw fail("cannot write JSON \(json): \(error.localizedDescription)", code: 1)
            }
            FileHandle.standardError.write(Data("facet eval pairs: JSON written to \(json)\n".utf8))
        }
        if json == "-" {
            print(outcome.json())
        } else {
            let r = outcome.result
            func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
            func tar(_ f: Double) -> String {
                guard let p = r.tar(atFAR: f), p.resolved else { return "n/a (too few impostor pairs)" }
                return pct(p.tar)
            }
            print("pairs               \(r.pairs) (\(r.genuinePairs) matched, \(r.impostorPairs) mismatched, \(Set(outcome.pairs.folds).count) folds)")
            print("images              \(outcome.imageCount) (\(outcome.failedToTemplate) failed to template, fallback crop used)")
            print("accuracy            \(pct(r.accuracy)) ± \(pct(r.accuracyStd))")
            print("TAR @ FAR 1e-2      \(tar(1e-2))")
            print("TAR @ FAR 1e-3      \(tar(1e-3))")
            print("EER                 \(pct(r.eer))")
            print("AUC                 \(String(format: "%.5f", r.auc))")
            print(String(format: "embedding time      %.1f s (%.2f images/s)", outcome.embedSeconds,
                         Double(outcome.imageCount) / max(outcome.embedSeconds, 1e-9)))
        }
    }
}
