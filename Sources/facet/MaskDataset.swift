import ArgumentParser
import FacetEval
import FacetFace
import FacetImaging
import FacetMasking
import Foundation

/// `facet mask-dataset --in DIR --out DIR`: a masked copy of an image folder (e.g. LFW), deterministic
/// from the seed, with a manifest saying which image got which mask.
struct MaskDatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask-dataset",
        abstract: "Copy an image folder, masking a fraction of its faces with one mask family (train or test).",
        discussion: """
        Every image under --in (JPEG/PNG, any depth) is written to the same relative path under --out: masked \
        with probability --fraction, otherwise copied byte for byte. Which images are masked and how is a pure \
        function of the relative path and --seed, so runs repeat exactly. Masks come from the --split family \
        (MaskFamily): TRAIN and TEST share no type, colour, pattern or seed. OUT/masks-manifest.jsonl has one \
        line per image: path, masked, spec, variant, face box, status.
        """)

    @Option(name: .customLong("in"), help: "Input folder.") var input: String
    @Option(name: .customLong("out"), help: "Output folder (created).") var output: String
    @Option(help: "Fraction of images to mask, 0...1.") var fraction: Double = 1
    @Option(parsing: .upToNextOption, help: "Restrict to these types of the family (default: all of the family's).")
    var types: [String] = []
    @Option(help: "Mask family: train or test.") var split: String = "test"
    @Option(help: "Seed of the whole run.") var seed: UInt64 = 0
    @Option(help: "Output format: same (as the input), png or jpeg.") var format: String = "same"
    @Option(help: "JPEG quality 1...100 when writing JPEG.") var quality: Int = 95
    @OptionGroup var faces: FaceFindingOptions

    func validate() throws {
        guard (0...1).contains(fraction) else { throw ValidationError("--fraction must be in 0...1") }
        guard let family = MaskFamily(rawValue: split) else { throw ValidationError("--split must be train or test") }
        for t in types {
            guard let type = MaskType(name: t) else { throw ValidationError("unknown mask type '\(t)'") }
            guard family.types.contains(type) else {
                throw ValidationError("\(type.rawValue) is not in the \(split) family (\(family.types.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        guard ["same", "png", "jpeg", "jpg"].contains(format) else { throw ValidationError("--format must be same, png or jpeg") }
        try faces.validate()
    }

    func run() throws {
        let family = MaskFamily(rawValue: split)!
        let typeFilter = types.compactMap(MaskType.init(name:))
        let inRoot = URL(fileURLWithPath: input).standardizedFileURL
        let outRoot = URL(fileURLWithPath: output).standardizedFileURL
        let files = try listImages(under: inRoot)
        guard !files.isEmpty else { throw ValidationError("no JPEG or PNG files under \(input)") }
        try FileManager.default.createDirectory(at: outRoot, withIntermediateDirectories: true)

        let finder = try FaceFinder(options: faces)
        let renderer = try MaskRenderer()
        let decoder = ImageDecoder()
        let encoder = ImageEncoder(jpegQuality: quality)
        let progress = ProgressReporter(total: files.count, label: "mask-dataset")
        var manifest = ""
        var counts: [String: Int] = [:]

        for relative in files {
            defer { progress.advance() }
            let source = inRoot.appendingPathComponent(relative)
            var target = outRoot.appendingPathComponent(relative)
            let key = stableHash(relative, seed: seed)
            var rng = SplitMix64(seed: key)
            let wantMask = rng.unit() < fraction
            var entry: [String: String] = ["path": quoted(relative), "masked": "false"]
            do {
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                if wantMask {
                    let picture = try decoder.decodeFile(atPath: source.path)
                    let found = try finder.faces(in: picture)
                    if let face = found.first {
                        let spec = family.randomSpec(key: key, types: typeFilter.isEmpty ? nil : typeFilter)
                        let out = try renderer.apply(to: picture, landmarks: face.landmarks, spec: spec)
                        let ext = format == "same" ? source.pathExtension : format
                        target = target.deletingPathExtension().appendingPathExtension(ext)
                        try encoder.write(out.image, toPath: target.path)
                        entry["masked"] = "true"
                        entry["type"] = quoted(spec.type.rawValue)
                        entry["color"] = quoted(spec.color.name)
                        entry["texture"] = quoted(spec.texture.description)
                        entry["placement"] = quoted(spec.placement.rawValue)
                        entry["seed"] = "\(spec.seed)"
                        entry["family"] = quoted(family.rawValue)
                        entry["variant"] = quoted(out.variant)
                        entry["box"] = "[\(face.box.left), \(face.box.top), \(face.box.right), \(face.box.bottom)]"
                        entry["status"] = quoted("masked")
                        counts["masked", default: 0] += 1
                    } else {
                        try copyUnchanged(source, to: target)
                        entry["status"] = quoted("no face")
                        counts["no face", default: 0] += 1
                    }
                } else {
                    try copyUnchanged(source, to: target)
                    entry["status"] = quoted("kept")
                    counts["kept", default: 0] += 1
                }
            } catch {
                entry["status"] = quoted("error: \(error)")
                counts["error", default: 0] += 1
            }
            let order = ["path", "masked", "status", "family", "type", "color", "texture", "placement", "seed", "variant", "box"]
            manifest += "{" + order.compactMap { k in entry[k].map { "\"\(k)\": \($0)" } }.joined(separator: ", ") + "}\n"
        }
        progress.finish()
        try Data(manifest.utf8).write(to: outRoot.appendingPathComponent("masks-manifest.jsonl"), options: .atomic)
        let summary = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        FileHandle.standardError.write(Data("mask-dataset: \(files.count) images: \(summary)\n".utf8))
    }
}

/// Relative paths of the JPEG/PNG files under `root`, sorted.
func listImages(under root: URL) throws -> [String] {
    guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
        throw ValidationError("cannot read folder \(root.path)")
    }
    var out: [String] = []
    let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
    for case let url as URL in walker {
        guard ["jpg", "jpeg", "png"].contains(url.pathExtension.lowercased()) else { continue }
        let path = url.standardizedFileURL.path
        guard path.hasPrefix(prefix) else { continue }
        out.append(String(path.dropFirst(prefix.count)))
    }
    return out.sorted()
}

func copyUnchanged(_ source: URL, to target: URL) throws {
    if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
    try FileManager.default.copyItem(at: source, to: target)
}

/// A JSON string literal.
func quoted(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
        }
    }
    return out + "\""
}
