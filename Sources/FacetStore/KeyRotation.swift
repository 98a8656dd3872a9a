import Foundation

/// Master-key rotation over a matcher's data directory (`facet keys rotate`).
public enum KeyRotation {
    public struct Result: Sendable { public var rotated = 0; public var alreadyRotated = 0; public var keys = 0 }

    /// Re-wraps the key vault of every partition under `dataDirectory` (`p-*/subject-keys.vault`) from `old` to
    /// `new`. Vaults already under `new` are skipped (a rotation that stopped half-way can be re-run).
    /// - Throws: ``StoreError/crypto(_:)`` when a vault is under neither key.
    public static func rotate(dataDirectory: String, from old: MasterKey, to new: MasterKey) throws -> Result {
        var result = Result()
        let names = try FileManager.default.contentsOfDirectory(atPath: dataDirectory).sorted()
        for name in names {
            let path = dataDirectory + "/" + name + "/" + EncryptedTemplateSealer.vaultFileName
            guard FileManager.default.fileExists(atPath: path) else { continue }
            if let _ = try? SubjectKeyVault(path: path, master: new) { result.alreadyRotated += 1; continue }
            let vault = try SubjectKeyVault(path: path, master: old)
            try vault.rewrap(with: new)
            result.rotated += 1
            result.keys += vault.subjectKeyCount
        }
        return result
    }
}
