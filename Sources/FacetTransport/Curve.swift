import CZeroMQ

/// A 32-byte CURVE key (Curve25519), public or secret. `description` never prints a key's bytes;
/// use `z85` explicitly (and only for public keys in logs).
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(TransportError) {
        guard bytes.count == 32 else { throw .invalidKey("expected 32 bytes, got \(bytes.count)") }
        self.bytes = bytes
    }

    /// A key from its 40-character Z85 text (surrounding whitespace ignored).
    public init(z85 text: String) throws(TransportError) {
        let trimmed = String(text.trimmingWhitespace())
        guard trimmed.utf8.count == 40 else { throw .invalidKey("expected 40 Z85 characters, got \(trimmed.utf8.count)") }
        try self.init(bytes: Z85.decode(trimmed))
    }

    /// The key as 40 characters of Z85.
    public var z85: String { Z85.encode(bytes) }

    public var description: String { "CurveKey(32 bytes)" }
}

extension String {
    fileprivate func trimmingWhitespace() -> Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}

/// A CURVE key pair. `description` shows the public key only.
public struct CurveKeyPair: Sendable, Hashable, CustomStringConvertible {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A fresh key pair (`zmq_curve_keypair`).
    public static func generate() throws(TransportError) -> CurveKeyPair {
        guard ZMQContext.has("curve") else { throw .curveUnavailable }
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        _ = try zmqCall("zmq_curve_keypair") { zmq_curve_keypair(&pub, &sec) }
        return CurveKeyPair(publicKey: try CurveKey(z85: String(cString: pub)),
                            secretKey: try CurveKey(z85: String(cString: sec)))
    }

    /// The pair of a secret key, deriving the public key (`zmq_curve_public`).
    public init(secretKey: CurveKey) throws(TransportError) {
        guard ZMQContext.has("curve") else { throw .curveUnavailable }
        var pub = [CChar](repeating: 0, count: 41)
        let secZ85 = secretKey.z85
        _ = try zmqCall("zmq_curve_public") { zmq_curve_public(&pub, secZ85) }
        self.init(publicKey: try CurveKey(z85: String(cString: pub)), secretKey: secretKey)
    }

    public var description: String { "CurveKeyPair(public: \(publicKey.z85))" }
}

/// Z85 (ZeroMQ RFC 32) through libzmq's `zmq_z85_encode` / `zmq_z85_decode`.
public enum Z85 {
    /// Encodes bytes whose count is a multiple of 4.
    public static func encode(_ bytes: [UInt8]) -> String {
        precondition(bytes.count % 4 == 0, "Z85 encodes whole 4-byte groups")
        var out = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
        bytes.withUnsafeBufferPointer { b in _ = zmq_z85_encode(&out, b.baseAddress, b.count) }
        return String(cString: out)
    }

    /// Decodes Z85 text whose length is a multiple of 5.
    public static func decode(_ text: String) throws(TransportError) -> [UInt8] {
        let n = text.utf8.count
        guard n % 5 == 0 else { throw .invalidKey("Z85 text length \(n) is not a multiple of 5") }
        var out = [UInt8](repeating: 0, count: n * 4 / 5)
        let ok = out.withUnsafeMutableBufferPointer { o in zmq_z85_decode(o.baseAddress, text) != nil }
        guard ok else { throw .invalidKey("not valid Z85") }
        return out
    }
}

/// The security mechanism of a socket.
public enum SocketSecurity: Sendable, Hashable {
    /// No encryption, no authentication (development only; `facet` asks for it explicitly).
    case plaintext
    /// CURVE server: encrypts and asks the context's ZAP handler (if any) about each client key.
    case curveServer(CurveKeyPair, zapDomain: String)
    /// CURVE client: its own key pair and the server's public key.
    case curveClient(CurveKeyPair, serverPublicKey: CurveKey)
}
