import ArgumentParser
import Foundation
import FacetClient
import FacetTransport
import FacetWire

/// Options every client command takes.
struct ClientOptions: ParsableArguments {
    @Option(help: "The coordinator's client endpoint.") var endpoint: String = "tcp://127.0.0.1:5555"
    @Option(name: .customLong("timeout-ms"), help: "Request deadline in milliseconds.") var timeoutMilliseconds: Int = 60_000
    @Option(help: "Directory with this client's CURVE keys (client.key_secret) and the coordinator's public key (coordinator.key), as `facet cluster up` writes them (default $FACET_KEYS).")
    var keys: String?
    @Option(name: .customLong("client-key"), help: "This client's CURVE secret key file (instead of --keys).") var clientKey: String?
    @Option(name: .customLong("server-key"), help: "The coordinator's CURVE public key file (instead of --keys).") var serverKey: String?
    @Flag(name: .customLong("insecure-plaintext"), help: "Development only: connect without CURVE (the coordinator must run in plaintext mode).")
    var insecurePlaintext = false
    @Option(help: "Times a request that failed with a retryable error (NOT_DURABLE, UNAVAILABLE, QUEUE_FULL, …) is sent again within --timeout-ms, if it may be sent twice: reads and enrolments (FacetClient.RetryPolicy). Default 3; 6 for enroll-batch.")
    var retries: Int?

    func validate() throws {
        if let r = retries, !(0...20).contains(r) { throw ValidationError("--retries must be in 0...20") }
    }

    /// A client with the options' endpoint, keys and deadline; `retry` is the command's retry policy (default: up to
    /// --retries, default 3, retries with FacetClient.RetryPolicy's backoff).
    func connect(retry: FacetClient.RetryPolicy? = nil) throws -> FacetClient {
        try FacetClient(endpoint: endpoint, curve: try curve(), timeout: .milliseconds(timeoutMilliseconds),
                        retry: retry ?? FacetClient.RetryPolicy(maxAttempts: (retries ?? 3) + 1))
    }

    /// Connects, runs `body` with the client and closes it. An error from `body` is printed and ends the process
    /// (`fail`), except `ExitCode`, which is passed on; an error while connecting (bad options) is thrown.
    func withClient(_ body: (FacetClient) async throws -> Void) async throws {
        let c = try connect()
        do {
            try await body(c)
        } catch let e as ExitCode {
            await c.close()
            throw e
        } catch {
            await c.close()
            fail(error)
        }
        await c.close()
    }

    /// The CURVE settings from --client-key/--server-key, --keys or $FACET_KEYS; nil with --insecure-plaintext.
    func curve() throws -> FacetClient.Curve? {
        if insecurePlaintext { return nil }
        let dir = keys ?? ProcessInfo.processInfo.environment["FACET_KEYS"]
        guard let secret = clientKey ?? dir.map({ $0 + "/client.key_secret" }),
              let server = serverKey ?? dir.map({ $0 + "/coordinator.key" }) else {
            throw ValidationError("no CURVE keys: give --keys DIR (or set FACET_KEYS; `facet cluster up` prints it), or --client-key and --server-key; --insecure-plaintext for a development cluster")
        }
        return FacetClient.Curve(clientKeys: try CurveKeyFiles.readKeyPair(secretKeyAt: secret),
                                 serverPublicKey: try CurveKeyFiles.readKey(at: server))
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
