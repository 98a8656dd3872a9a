import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet verify A B` or `facet verify A --subject ID`
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Compare two photos, or a photo with an enrolled subject (1:1).")

    @OptionGroup var client: ClientOptions
    @Option(help: "Compare with this enrolled subject instead of a second photo.") var subject: String?
    @Option(help: "Decision threshold (Euclidean distance; 0 = the server's).") var threshold: Float = 0
    @Flag(help: "Print the reply as JSON.") var json = false
    @Argument(help: "Probe image, then the reference image unless --subject is given.") var images: [String]

    func validate() throws {
        if subject == nil { guard images.count == 2 else { throw ValidationError("give two images, or one image and --subject") } }
        else { guard images.count == 1 else { throw ValidationError("give one image with --subject") } }
    }

    func run() async throws {
        let probe = try readImage(images[0])
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            let r: WireVerifyReply
            if let subject {
                r = try await c.verify(probe: probe, subjectID: subject, threshold: threshold)
            } else {
                r = try await c.verify(probe: probe, reference: try readImage(images[1]), threshold: threshold)
            }
            if json {
                printJSON(["distance": Double(r.distance), "score": Double(r.score), "match": r.match, "threshold": Double(r.threshold),
                           "comparison": Self.comparisonName(r.comparison), "probe_masked": r.probeMasked,
                           "reference_masked": r.referenceMasked, "periocular_fused": r.periocularFused])
            } else {
                print("\(r.match ? "MATCH" : "NO MATCH"): distance \(format(r.distance)) (threshold \(format(r.threshold)); "
                      + "\(Self.comparisonName(r.comparison))\(r.periocularFused ? ", full + periocular fused" : ""))")
            }
        } catch { fail(error) }
    }

    static func comparisonName(_ c: WireComparisonType) -> String {
        switch c {
        case .maskedMasked: "masked-masked"
        case .maskedUnmasked: "masked-unmasked"
        default: "unmasked-unmasked"
        }
    }
}
