import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The at-rest master key (256-bit AES key). It never encrypts data itself: it wraps the per-subject data keys,
/// the per-snapshot keys and the partition's index key (envelope encryption, see ``SubjectKeyVault``).
///
/// Text form (files and `$FACET_MASTER_KEY`): `facet-master-v1:` followed by the key in base64. Key files are
/// written with mode 0600. `description` never prints the key, only its id.
public struct MasterKey: Sendable, CustomStringConvertible {
    public let key: SymmetricKey
    /// 8 bytes naming the key (a hash, not the key): recorded in vaults so a wrong key is reported as such.
    public let id: [UInt8]

    static let prefix = "facet-master-v1:"

    public init(bytes: [UInt8]) throws(StoreError) {
        guard bytes.count == 32 else { throw .crypto("a master key is 32 bytes, got \(bytes.count)") }
        key = SymmetricKey(data: bytes)
        id = Array(SHA256.hash(data: Array("facet-master-key-id".utf8) + bytes).prefix(8))
    }

    /// Parses the text form (surrounding whitespace ignored).
    public init(text: String) throws(StoreError) {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard t.hasPrefix(Self.prefix), let data = Data(base64Encoded: String(t.dropFirst(Self.prefix.count))) else {
            throw .crypto("not a master key (expected \(Self.prefix)BASE64)")
        }
        try self.init(bytes: Array(data))
    }

    /// A fresh random key.
    public static func generate() -> MasterKey {
        let k = SymmetricKey(size: .bits256)
        return try! MasterKey(bytes: k.withUnsafeBytes { Array($0) })
    }

    public var text: String { Self.prefix + key.withUnsafeBytes { Data($0).base64EncodedString() } }
    public var idHex: String { id.map { String(format: "%02x", $0) }.joined() }
    public var description: String { "MasterKey(id \(idHex))" }

    /// Reads a key file.
    public static func read(from path: String) throws(StoreError) -> MasterKey {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .io(path: path, reason: "cannot read master key: \(error.localizedDescription)")
        }
        do { return try MasterKey(text: text) } catch { throw .crypto("\(path): \(error)") }
    }

    /// Writes the key file with mode 0600; refuses to overwrite unless `overwrite`.
    public func write(to path: String, overwrite: Bool = false) throws(StoreError) {
        if !overwrite && FileManager.default.fileExists(atPath: path) {
            throw .io(path: path, reason: "exists; not overwriting a key")
        }
        let fd = Glibc.open(path + ".tmp", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw .io(path: path, reason: "open failed: errno \(errno)") }
        let bytes = Array((text + "\n").utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o600)
        fsync(fd)
        close(fd)
        guard n == bytes.count, rename(path + ".tmp", path) == 0 else { throw .io(path: path, reason: "write failed: errno \(errno)") }
    }
}
