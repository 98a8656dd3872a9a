import Foundation

/// CURVE keys on disk, as `facet keys generate` writes them and nodes read them: one Z85 key
/// (40 characters) per file, with a newline. Secret key files are created with mode 0600.
/// Allow-lists are text files with one Z85 public key per line; blank lines, lines starting
/// with `#` and text after a key (separated by whitespace) are ignored.
public enum CurveKeyFiles {
    /// Writes `pair` as `<base>.key` (public) and `<base>.key_secret` (secret, mode 0600) and
    /// returns the two paths. Refuses to overwrite an existing secret unless `overwrite`.
    @discardableResult
    public static func write(_ pair: CurveKeyPair, base: String, overwrite: Bool = false)
        throws(TransportError) -> (publicKey: String, secretKey: String)
    {
        let pub = base + ".key", sec = base + ".key_secret"
        let fm = FileManager.default
        if !overwrite && fm.fileExists(atPath: sec) { throw .invalidKey("\(sec) exists; not overwriting a secret key") }
        do {
            try Data((pair.secretKey.z85 + "\n").utf8).write(to: URL(fileURLWithPath: sec), options: .atomic)
            try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: sec)
            try Data((pair.publicKey.z85 + "\n").utf8).write(to: URL(fileURLWithPath: pub), options: .atomic)
        } catch {
            throw .invalidKey("cannot write key files at \(base): \(error.localizedDescription)")
        }
        return (pub, sec)
    }

    /// Reads one key from a file holding its Z85 text.
    public static func readKey(at path: String) throws(TransportError) -> CurveKey {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .invalidKey("cannot read \(path): \(error.localizedDescription)")
        }
        do { return try CurveKey(z85: text) } catch {
            throw .invalidKey("\(path): \(error)")
        }
    }

    /// Reads a key pair from its secret key file, deriving the public key.
    public static func readKeyPair(secretKeyAt path: String) throws(TransportError) -> CurveKeyPair {
        try CurveKeyPair(secretKey: readKey(at: path))
    }

    /// Reads an allow-list file: one Z85 public key per line; blank lines, `#` lines and text
    /// after the key are ignored.
    /// A line that is not a key is an error naming the line.
    public static func readAllowList(at path: String) throws(TransportError) -> Set<CurveKey> {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .invalidKey("cannot read allow-list \(path): \(error.localizedDescription)")
        }
        var keys = Set<CurveKey>()
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            // '#' is a Z85 character but never the first of a group (it encodes 84 × 85^4 > 2^32),
            // so a key cannot start with it: a line starting with '#' is a comment.
            guard let token = raw.split(whereSeparator: \.isWhitespace).first.map(String.init),
                  !token.hasPrefix("#") else { continue }
            do { keys.insert(try CurveKey(z85: token)) } catch {
                throw .invalidKey("\(path) line \(n + 1): \(error)")
            }
        }
        return keys
    }
}
