import ArgumentParser
import FacetEval
import FacetFace
import FacetImaging
import Foundation

/// Research helper (hidden): the face ResNet's activations after its last residual block (256 × 2×2) and the
/// descriptor of each face's chip, for the faces of a `facet embed --json` file (the face nearest the image centre,
/// at its cached 5 landmarks; `--recut Y` cuts the chip from the masked-face alignment instead). Writes OUT.f32
/// (N × (A + 128) little-endian float32: the A activations (1,024 for block 13), then the 128 numbers of the network's raw output, which
/// `facet embed` prints L2-normalised) and OUT.txt (the N image keys).
struct ActivationsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "activations", abstract: "Dump last-block activations (research).", shouldDisplay: false)
    @Option var json: String
    @Option var root: String
    @Option var out: String
    @Option var recut: Double = 0
    @Option var shard: Int = 0
    @Option var shards: Int = 1
    @Option(help: "Residual block whose output is written (13 = the last).") var block: Int = 13

    func validate() throws {
        guard shards >= 1, (0..<shards).contains(shard) else { throw ValidationError("--shard must be in 0..<--shards (at least 1)") }
        guard recut >= 0 && recut < 1 else { throw ValidationError("--recut is a template height between 0 and 1 (0 = off)") }
    }

    func run() throws {
        let resnet = try ResNetFaceDescriptor(modelPath: FaceModelLocator().path(of: FaceModelLocator.resnetFile))
        let decoder = ImageDecoder()
        // Records with a face, sharded by their 1-based place among them.
        let found = try readEmbedLines(json).compactMap { r in r.face.map { (r.image, $0.landmarks) } }
        let jobs = found.enumerated().filter { ($0.offset + 1) % shards == shard && $0.element.1.count == 5 }.map(\.element)
        var data = Data()
        var keys: [String] = []
        let progress = ProgressReporter(total: jobs.count, label: "activations")
        for start in stride(from: 0, to: jobs.count, by: 32) {
            let part = jobs[start ..< min(jobs.count, start + 32)]
            var chips: [RGBImage] = []
            for (image, lm) in part {
                let picture = try decoder.decodeFile(atPath: (root as NSString).appendingPathComponent(image))
                let marks = recut > 0 ? ChipDetails.maskedLandmarks(lm, noseY: recut) : lm
                chips.append(FaceChip.extract(picture, details: ChipDetails.forFace(landmarks: marks)))
                keys.append(image)
            }
            let r = try resnet.descriptorsAndActivations(for: chips, block: block)
            for (a, d) in zip(r.activations, r.descriptors) {
                for v in a + d { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            }
            progress.advance(by: part.count)
        }
        progress.finish()
        try data.write(to: URL(fileURLWithPath: out + ".f32"))
        try Data((keys.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: out + ".txt"))
    }
}
