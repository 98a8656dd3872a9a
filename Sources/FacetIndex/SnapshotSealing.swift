/// Encryption of index snapshots as they stream to and from disk, so that no plaintext vector byte is ever
/// written (FacetStore's AES-GCM implementation plugs in here; this module knows no cryptography).
///
/// A sealed snapshot file is: magic `FACETENC` (8 bytes), header length (UInt32 LE) and the sealer's `header`
/// (e.g. a key id and a wrapped file key), then chunks, each `final` flag (UInt8), sealed length (UInt32 LE) and
/// the sealed bytes of at most ``chunkSize`` plaintext bytes. The chunk index and the final flag are the
/// cipher's associated data, so reordered, dropped or truncated chunks are detected.
public protocol SnapshotSealing: Sendable {
    /// A sealer for one new snapshot file.
    func makeSnapshotSealer() throws(IndexError) -> any SnapshotChunkSealer
    /// An opener for a file whose header is `header`.
    func makeSnapshotOpener(header: [UInt8]) throws(IndexError) -> any SnapshotChunkOpener
}

public protocol SnapshotChunkSealer {
    /// Written in the clear after the magic (must not contain secrets in the clear).
    var header: [UInt8] { get }
    func seal(_ plaintext: [UInt8], chunk: UInt64, final: Bool) throws(IndexError) -> [UInt8]
}

public protocol SnapshotChunkOpener {
    func open(_ sealed: [UInt8], chunk: UInt64, final: Bool) throws(IndexError) -> [UInt8]
}

enum SealedSnapshot {
    static let magic: [UInt8] = Array("FACETENC".utf8)
    static let chunkSize = 1 << 20
    static let maxSealedChunk = chunkSize + 4096
}
