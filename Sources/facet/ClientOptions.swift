import ArgumentParser
import Foundation
import FacetClient
import FacetWire

/// Options every client command takes.
struct ClientOptions: ParsableArguments {
    @Option(help: "The coordinator's client endpoint.") var endpoint: String = "tcp://127.0.0.1:5555"
    @Option(name: .customLong("timeout-ms"), help: "Request deadline in milliseconds.") var timeoutMilliseconds: Int = 60_000

    func connect() throws -> FacetClient {
        try FacetClient(endpoint: endpoint, timeout: .milliseconds(timeoutMilliseconds))
    }
}

/// Reads an image file, with a clear error for a missing or unreadable path.
func readImage(_ path: String) throws -> Data {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read image \(path)")
    }
    return data
}

/// Prints a typed error as `error: CODE: message` and exits with status 1 (2 for invalid arguments).
func fail(_ error: any Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit((error as? FacetError)?.code == .invalidArgument ? 2 : 1)
}

func printJSON(_ object: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]),
       let s = String(data: data, encoding: .utf8) { print(s) }
}

func format(_ x: Float) -> String { String(format: "%.4f", x) }
