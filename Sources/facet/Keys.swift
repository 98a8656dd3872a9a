import ArgumentParser
import Foundation
import FacetStore
import FacetTransport

/// `facet keys generate|rotate`: CURVE key pairs and at-rest master keys.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Generate CURVE key pairs and at-rest master keys; rotate a matcher's master key.",
        subcommands: [Generate.self, Rotate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Write a CURVE key pair (NAME.key public, NAME.key_secret secret, Z85, mode 0600) or, with --master, an at-rest master key (NAME.master, mode 0600).")

        @Argument(help: "Base name of the key files (e.g. coordinator, client-app1, matcher-0).") var name: String
        @Option(name: [.customLong("dir"), .customLong("out")], help: "Directory for the key files.") var dir: String = "."
        @Flag(help: "Write an AES-256 master key for encryption at rest (or the audit chain) instead of a CURVE pair.") var master = false
        @Flag(help: "Overwrite existing key files.") var force = false

        func run() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let base = (dir as NSString).appendingPathComponent(name)
            if master {
                let key = MasterKey.generate()
                try key.write(to: base + ".master", overwrite: force)
                print("master key \(key.idHex) written to \(base).master (mode 0600)")
            } else {
                let pair = try CurveKeyPair.generate()
                let (pub, sec) = try CurveKeyFiles.write(pair, base: base, overwrite: force)
                print("public key \(pair.publicKey.z85)")
                print("written to \(pub) and \(sec) (mode 0600); add the public key to the coordinator's allow-list")
            }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Re-wrap every data key of a matcher's partitions under a new master key (run with the matcher stopped).",
            discussion: """
                Every subject's data key, every snapshot key and each partition's index key are unwrapped with the old \
                master key and wrapped again with the new one; each partition's key vault is replaced atomically. The \
                templates themselves stay sealed under their data keys, so nothing else is rewritten. A vault already \
                under the new key is skipped, so an interrupted rotation can simply be run again. Destroy the old key \
                afterwards. If --new-key names a file that does not exist, a fresh key is written there.
                """)

        @Option(help: "The matcher's data directory (the parent of its p-NNNNN partitions).") var data: String
        @Option(name: .customLong("old-key"), help: "The current master key file.") var oldKey: String
        @Option(name: .customLong("new-key"), help: "The new master key file (created when missing).") var newKey: String

        func run() throws {
            let old = try MasterKey.read(from: oldKey)
            let new: MasterKey
            if FileManager.default.fileExists(atPath: newKey) { new = try MasterKey.read(from: newKey) } else {
                new = MasterKey.generate()
                try new.write(to: newKey)
                print("new master key \(new.idHex) written to \(newKey)")
            }
            guard old.id != new.id else { throw ValidationError("the old and new keys are the same") }
            let result = try KeyRotation.rotate(dataDirectory: data, from: old, to: new)
            print("re-wrapped \(result.rotated) vault(s) under \(new.idHex) (\(result.alreadyRotated) already under it, \(result.keys) data keys)")
        }
    }
}
