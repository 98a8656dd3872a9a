import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet identify IMAGE [-k 5] [--json]`
struct Identify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identify", abstract: "Find the enrolled subjects nearest to the largest face in a photo (1:N).")

    @OptionGroup var client: ClientOptions
    @Option(name: .short, help: "Number of candidates.") var k: UInt32 = 5
    @Flag(help: "Print the reply as JSON.") var json = false
    @Flag(name: .customLong("no-classifier"), help: "Do not ask for the SVM classifier's decision.") var noClassifier = false
    @Argument(help: "Image file (JPEG or PNG).") var image: String

    func run() async throws {
        let data = try readImage(image)
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            let r = try await c.identify(image: data, k: k, withClassifier: !noClassifier)
            if json {
                printJSON(["image": image, "partial": r.partial, "missing_partitions": r.missingPartitions.map { Int($0) },
                           "threshold": Double(r.threshold),
                           "candidates": r.candidates.map { ["subject": $0.subjectID, "template_id": String($0.templateID),
                                                             "distance": Double($0.distance), "score": Double($0.score), "match": $0.match,
                                                             "partition": Int($0.partition), "node": $0.nodeID] as [String: Any] },
                           "classifier": classifierJSON(r)])
            } else {
                print("\(image):\(r.partial ? " PARTIAL (missing partitions \(r.missingPartitions))" : "")")
                if r.candidates.isEmpty { print("  no candidates") }
                for (i, cand) in r.candidates.enumerated() {
                    print("  \(i + 1). \(cand.subjectID)  distance \(format(cand.distance))  \(cand.match ? "MATCH" : "no match")  (partition \(cand.partition) on \(cand.nodeID))")
                }
                if r.hasDecision, let best = r.decision.top.first {
                    let score = r.decision.calibrated ? "probability \(format(r.decision.probability))" : "decision value \(format(r.decision.decisionValue))"
                    print("  classifier \(r.decision.classifierVersion): \(best.subjectID)  \(score)  \(r.decision.accepted ? "ACCEPTED" : "rejected")")
                }
            }
        } catch { fail(error) }
    }
}

/// The classifier's decision as JSON (NSNull when the cluster has no classifier for the query's model).
func classifierJSON(_ r: WireIdentifyReply) -> Any {
    guard r.hasDecision else { return NSNull() }
    let d = r.decision
    return ["version": d.classifierVersion, "subject": d.subjectID, "accepted": d.accepted, "calibrated": d.calibrated,
            "probability": Double(d.probability), "decision_value": Double(d.decisionValue), "threshold": Double(d.threshold),
            "top": d.top.map { ["subject": $0.subjectID, "decision_value": Double($0.decisionValue)] as [String: Any] }] as [String: Any]
}
