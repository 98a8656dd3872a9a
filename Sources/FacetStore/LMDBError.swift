import CLMDB

/// A failed LMDB call: which function, and the code it returned.
public struct LMDBError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The C function that failed, e.g. `mdb_env_open`.
    public var function: String
    /// LMDB's return code (an `MDB_*` constant or an errno value).
    public var code: Int32

    public init(function: String, code: Int32) { self.function = function; self.code = code }

    public var description: String { "\(function) failed: \(String(cString: mdb_strerror(code))) (\(code))" }

    /// The memory map is full (`MDB_MAP_FULL`); ``LMDBEnvironment`` grows the map and retries.
    public var isMapFull: Bool { code == MDB_MAP_FULL }
    public static let mapFull = MDB_MAP_FULL
}

@inline(__always)
func lmdbCall(_ function: String, _ body: () -> Int32) throws(LMDBError) {
    let rc = body()
    guard rc == MDB_SUCCESS else { throw LMDBError(function: function, code: rc) }
}
