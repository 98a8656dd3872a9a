import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// `facet subjects [--prefix P] [--collection C] [--page-size N] [--all] [--json]`: enrolled subjects, by id.
struct Subjects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subjects", abstract: "List enrolled subjects (paged, ordered by subject id).")

    @OptionGroup var client: ClientOptions
    @Option(help: "Only subject ids starting with this.") var prefix = ""
    @Option(help: "Only templates of this collection.") var collection = ""
    @Option(name: .customLong("page-size"), help: "Subjects per page (at most 1000).") var pageSize: UInt32 = 100
    @Option(name: .customLong("page-token"), help: "Continue after this token (printed at the end of a page).") var pageToken = ""
    @Flag(help: "Follow page tokens to the end.") var all = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let c = try client.connect()
        defer { Task { await c.close() } }
        do {
            var token = pageToken
            var subjects: [WireSubjectSummary] = []
            repeat {
                let page = try await c.listSubjects(collection: collection, pageSize: pageSize, pageToken: token, prefix: prefix)
                subjects += page.subjects
                if !json { for s in page.subjects { print("\(s.subjectID)\t\(s.templateCount)") } }
                if page.nextPageToken.isEmpty || page.nextPageToken == token { token = ""; break }
                token = page.nextPageToken
            } while all
            if json {
                printJSON(["subjects": subjects.map { ["subject": $0.subjectID, "templates": Int($0.templateCount)] as [String: Any] },
                           "next_page_token": token])
            } else if !token.isEmpty {
                print("# more: --page-token \(token)")
            }
        } catch { fail(error) }
    }
}
