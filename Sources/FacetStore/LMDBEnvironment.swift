import CLMDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Flags for `mdb_env_open`.
public struct LMDBOpenOptions: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `MDB_NOTLS`: read transactions are not tied to threads (Swift tasks hop threads).
    public static let noThreadLocalStorage = LMDBOpenOptions(rawValue: UInt32(MDB_NOTLS))
    /// `MDB_NOSUBDIR`: the path is a file, not a directory.
    public static let noSubdirectory = LMDBOpenOptions(rawValue: UInt32(MDB_NOSUBDIR))
}

/// One memory-mapped LMDB environment. The corresponding C type is `MDB_env`.
///
/// Durable by default: no `MDB_NOSYNC`/`MDB_NOMETASYNC`, so a committed write transaction is on disk
/// when ``write(_:)`` returns. When a write fails with `MDB_MAP_FULL`, the map is doubled
/// (`mdb_env_set_mapsize`) and the transaction retried, instead of failing.
/// LMDB documents `MDB_env` as thread-safe; transactions are confined to the closure that uses them.
public final class LMDBEnvironment: @unchecked Sendable {
    let handle: OpaquePointer
    /// Transactions hold this shared; growing the map takes it exclusive (LMDB requires no active
    /// transactions in this process for `mdb_env_set_mapsize`).
    private let resizeLock = StoreReadWriteLock()
    /// Serialises write transactions in this process (LMDB would block anyway; this keeps resize simple).
    private let writeMutex = StoreMutex()
    public let path: String
    /// Upper bound for automatic growth.
    public var maximumMapSize: Int = 1 << 40

    /// Opens (creating if needed) the environment in `directory`.
    /// - Throws: ``LMDBError`` naming the failing call (`mdb_env_open` for a missing directory).
    public init(directory: String, mapSize: Int = 64 << 20, maxDatabases: Int = 8, maxReaders: Int = 126,
                options: LMDBOpenOptions = [.noThreadLocalStorage]) throws(LMDBError) {
        var env: OpaquePointer?
        try lmdbCall("mdb_env_create") { mdb_env_create(&env) }
        guard let env else { preconditionFailure("mdb_env_create succeeded without a handle") }
        do throws(LMDBError) {
            try lmdbCall("mdb_env_set_mapsize") { mdb_env_set_mapsize(env, mapSize) }
            try lmdbCall("mdb_env_set_maxdbs") { mdb_env_set_maxdbs(env, MDB_dbi(maxDatabases)) }
            try lmdbCall("mdb_env_set_maxreaders") { mdb_env_set_maxreaders(env, UInt32(maxReaders)) }
            try lmdbCall("mdb_env_open") { mdb_env_open(env, directory, options.union(.noThreadLocalStorage).rawValue, 0o640) }
        } catch {
            mdb_env_close(env)   // `self` never existed, so `deinit` won't run: clean up here.
            throw error
        }
        handle = env
        path = directory
    }

    deinit { mdb_env_close(handle) }

    /// Current size of the memory map in bytes. The corresponding C function is `mdb_env_info`.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    /// Opens (creating) a named database. The corresponding C function is `mdb_dbi_open`.
    public func openDatabase(_ name: String, flags: LMDBDatabaseFlags = []) throws(LMDBError) -> LMDBDatabase {
        try write { (txn) throws(LMDBError) -> LMDBDatabase in
            var dbi = MDB_dbi()
            try lmdbCall("mdb_dbi_open(\(name))") { mdb_dbi_open(txn.handle, name, flags.rawValue | UInt32(MDB_CREATE), &dbi) }
            return LMDBDatabase(dbi: dbi, name: name)
        }
    }

    /// Runs `body` in a read-only transaction, then aborts it. The corresponding C function is `mdb_txn_begin`.
    public func read<R>(_ body: (LMDBTransaction) throws(LMDBError) -> R) throws(LMDBError) -> R {
        try resizeLock.withReadLock { () throws(LMDBError) -> R in
            var txn: OpaquePointer?
            try lmdbCall("mdb_txn_begin") { mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn) }
            defer { mdb_txn_abort(txn) }
            return try body(LMDBTransaction(handle: txn!))
        }
    }

    /// Runs `body` in a write transaction and commits it; returns only once the commit is durable.
    ///
    /// When LMDB reports `MDB_MAP_FULL` (from a put inside `body` or from the commit), the transaction
    /// is aborted, the map doubled, and `body` run again — so `body` must be a pure function of the
    /// database state (no side effects outside the transaction).
    public func write<R>(_ body: (LMDBTransaction) throws(LMDBError) -> R) throws(LMDBError) -> R {
        try writeMutex.withLock { () throws(LMDBError) -> R in
            while true {
                do throws(LMDBError) {
                    return try resizeLock.withReadLock { () throws(LMDBError) -> R in
                        var txn: OpaquePointer?
                        try lmdbCall("mdb_txn_begin") { mdb_txn_begin(handle, nil, 0, &txn) }
                        let result: R
                        do throws(LMDBError) { result = try body(LMDBTransaction(handle: txn!)) } catch { mdb_txn_abort(txn); throw error }
                        try lmdbCall("mdb_txn_commit") { mdb_txn_commit(txn) }   // frees txn on success and failure
                        return result
                    }
                } catch {
                    guard error.isMapFull else { throw error }
                    try grow()
                }
            }
        }
    }

    /// Doubles the memory map. The corresponding C function is `mdb_env_set_mapsize`.
    func grow() throws(LMDBError) {
        try resizeLock.withWriteLock { () throws(LMDBError) in
            let current = mapSize
            guard current < maximumMapSize else { throw LMDBError(function: "mdb_env_set_mapsize", code: MDB_MAP_FULL) }
            try lmdbCall("mdb_env_set_mapsize") { mdb_env_set_mapsize(handle, Swift.min(current * 2, maximumMapSize)) }
        }
    }

    /// The id of the last committed transaction (LMDB's `me_last_txnid`).
    public var lastTransactionID: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_last_txnid
    }
}

/// Flags for `mdb_dbi_open`.
public struct LMDBDatabaseFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `MDB_DUPSORT`: several sorted values per key.
    public static let duplicateSort = LMDBDatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
    /// `MDB_DUPFIXED`: with `duplicateSort`, all values have the same size.
    public static let duplicateFixed = LMDBDatabaseFlags(rawValue: UInt32(MDB_DUPFIXED))
}

/// A named database handle. The corresponding C type is `MDB_dbi`.
public struct LMDBDatabase: Sendable {
    let dbi: MDB_dbi
    public let name: String
}

/// A live transaction, valid only inside the closure that received it.
public struct LMDBTransaction {
    let handle: OpaquePointer

    /// The value for `key`, or nil. The corresponding C function is `mdb_get`.
    public func get(_ db: LMDBDatabase, _ key: [UInt8]) throws(LMDBError) -> [UInt8]? {
        var k = MDB_val(), v = MDB_val()
        let rc = key.withUnsafeBytes { kb -> Int32 in
            k.mv_size = kb.count; k.mv_data = UnsafeMutableRawPointer(mutating: kb.baseAddress)
            return mdb_get(handle, db.dbi, &k, &v)
        }
        if rc == MDB_NOTFOUND { return nil }
        guard rc == MDB_SUCCESS else { throw LMDBError(function: "mdb_get(\(db.name))", code: rc) }
        return [UInt8](UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// Stores `value` under `key`. The corresponding C function is `mdb_put`.
    public func put(_ db: LMDBDatabase, _ key: [UInt8], _ value: [UInt8]) throws(LMDBError) {
        let rc = key.withUnsafeBytes { kb in value.withUnsafeBytes { vb -> Int32 in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            var v = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
            return mdb_put(handle, db.dbi, &k, &v, 0)
        } }
        guard rc == MDB_SUCCESS else { throw LMDBError(function: "mdb_put(\(db.name))", code: rc) }
    }

    /// Deletes `key` (or one duplicate `value` of it); returns whether something was deleted.
    /// The corresponding C function is `mdb_del`.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: [UInt8], value: [UInt8]? = nil) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { kb -> Int32 in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            if let value {
                return value.withUnsafeBytes { vb -> Int32 in
                    var v = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
                    return mdb_del(handle, db.dbi, &k, &v)
                }
            }
            return mdb_del(handle, db.dbi, &k, nil)
        }
        if rc == MDB_NOTFOUND { return false }
        guard rc == MDB_SUCCESS else { throw LMDBError(function: "mdb_del(\(db.name))", code: rc) }
        return true
    }

    /// Calls `body` for each (key, value) in key order, starting at the first key ≥ `from` (all when nil),
    /// until it returns false. With `onlyKey`, visits just the duplicates of that key.
    /// The corresponding C functions are `mdb_cursor_open`/`mdb_cursor_get`.
    public func forEach(_ db: LMDBDatabase, from: [UInt8]? = nil, onlyKey: [UInt8]? = nil,
                        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(LMDBError) -> Bool) throws(LMDBError) {
        var cursor: OpaquePointer?
        try lmdbCall("mdb_cursor_open(\(db.name))") { mdb_cursor_open(handle, db.dbi, &cursor) }
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val(), v = MDB_val()
        let start = onlyKey ?? from
        var op: MDB_cursor_op = onlyKey != nil ? MDB_SET_KEY : (from != nil ? MDB_SET_RANGE : MDB_FIRST)
        let next: MDB_cursor_op = onlyKey != nil ? MDB_NEXT_DUP : MDB_NEXT
        var storage = start ?? []
        while true {
            let rc = storage.withUnsafeMutableBytes { sb -> Int32 in
                if op == MDB_SET_KEY || op == MDB_SET_RANGE { k.mv_size = sb.count; k.mv_data = sb.baseAddress }
                return mdb_cursor_get(cursor, &k, &v, op)
            }
            if rc == MDB_NOTFOUND { return }
            guard rc == MDB_SUCCESS else { throw LMDBError(function: "mdb_cursor_get(\(db.name))", code: rc) }
            let keepGoing = try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                                     UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            if !keepGoing { return }
            op = next
            storage = []
        }
    }

    /// Number of entries in `db`. The corresponding C function is `mdb_stat`.
    public func count(_ db: LMDBDatabase) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try lmdbCall("mdb_stat(\(db.name))") { mdb_stat(handle, db.dbi, &stat) }
        return stat.ms_entries
    }
}

/// Big-endian key encoding, so LMDB's byte order is numeric order.
public enum StoreKey {
    public static func uint64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    public static func uint64(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: bytes) }
        return UInt64(bigEndian: v)
    }
}

final class StoreReadWriteLock: @unchecked Sendable {   // pthread_rwlock_t is thread-safe by contract.
    private let handle = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    init() { pthread_rwlock_init(handle, nil) }
    deinit { pthread_rwlock_destroy(handle); handle.deallocate() }
    func withReadLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(handle); defer { pthread_rwlock_unlock(handle) }; return try body()
    }
    func withWriteLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(handle); defer { pthread_rwlock_unlock(handle) }; return try body()
    }
}

final class StoreMutex: @unchecked Sendable {   // pthread_mutex_t is thread-safe by contract.
    private let handle = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(handle, nil) }
    deinit { pthread_mutex_destroy(handle); handle.deallocate() }
    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(handle); defer { pthread_mutex_unlock(handle) }; return try body()
    }
}
