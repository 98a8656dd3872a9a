import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet delete --subject ID`
struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete every template of a subject, on every replica.")

    @OptionGroup var client: ClientOptions
    @Option(help: "Subject id.") var subject: String
    @Option(help: "Only this collection (default: all).") var collection: String = ""
    @Option(help: "Reason, for the audit trail.") var reason: String = ""

    func run() async throws {
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            let r = try await c.deleteSubject(subject, collection: collection, reason: reason)
            print("deleted \(r.templatesDeleted) template(s) of \(r.subjectID), durable on \(r.durability.durableOn.joined(separator: ", "))")
        } catch { fail(error) }
    }
}
