import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet enroll --subject ID IMAGE...`
struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll", abstract: "Enrol a subject from one or more photos (the largest face of each).")

    @OptionGroup var client: ClientOptions
    @Option(help: "Subject id (1-255 UTF-8 bytes).") var subject: String
    @Option(help: "Collection (default: \"default\").") var collection: String = ""
    @Flag(help: "Print the reply as JSON.") var json = false
    @Argument(help: "Image files (JPEG or PNG).") var images: [String]

    func run() async throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        let data = try images.map(readImage)
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            let r = try await c.enrol(subjectID: subject, images: data, collection: collection)
            if json {
                printJSON(["subject": r.subjectID, "collection": r.collection, "partition": Int(r.partition),
                           "template_ids": r.templateIds.map { String($0) },
                           "already_present": r.templates.map(\.alreadyPresent),
                           "durable_on": r.durability.durableOn])
            } else {
                print("enrolled \(r.subjectID): \(r.templateIds.count) template(s) in partition \(r.partition), durable on \(r.durability.durableOn.joined(separator: ", "))")
            }
        } catch { fail(error) }
    }
}
