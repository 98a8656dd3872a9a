import Foundation

/// A typed error for a dlib model file that cannot be read: missing, truncated, corrupt, or of another
/// architecture than the one asked for. Never a crash.
public struct DlibModelError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// The file could not be opened or read.
        case unreadable
        /// The data ended before the record being read was complete.
        case truncated
        /// A value is not in dlib's serialisation format (bad integer control byte, bad bool, absurd size).
        case malformed
        /// A version number or record name that this reader does not know.
        case unexpectedVersion
        /// The file is a valid dlib network, but not the architecture expected (other layer, other shape).
        case architectureMismatch
    }

    public var kind: Kind
    /// The model file, when known.
    public var path: String?
    /// Byte offset in the file where the problem was found.
    public var offset: Int
    public var message: String

    public init(_ kind: Kind, offset: Int, _ message: String, path: String? = nil) {
        self.kind = kind; self.offset = offset; self.message = message; self.path = path
    }

    public var description: String {
        "dlib model \(path ?? "<memory>"): \(kind.rawValue) at byte \(offset): \(message)"
    }
}

/// A cursor over the bytes of a dlib serialised object (`dlib/serialize.h`).
///
/// - integers: a control byte (low nibble = number of bytes, `0x80` = negative), then little-endian bytes;
/// - floats: packed int64 mantissa and packed int16 exponent, value = mantissa · 2^exponent;
/// - bool: the ASCII byte `'0'` or `'1'`;
/// - strings: packed length, then the bytes;
/// - tensors (`dlib/cuda/tensor.h`): version 2, n, k, nr, nc, then raw little-endian float32.
public struct DlibReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int = 0

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw DlibModelError(.unreadable, offset: 0, exists ? "cannot read the file" : "no such file", path: path)
        }
        self.bytes = [UInt8](data)
    }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { bytes.count - offset }

    func error(_ kind: DlibModelError.Kind, _ message: String) -> DlibModelError {
        DlibModelError(kind, offset: offset, message)
    }

    mutating func byte(_ what: String) throws -> UInt8 {
        guard offset < bytes.count else { throw error(.truncated, "file ends while reading \(what)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A packed signed integer that must fit in `maxBytes` bytes.
    public mutating func readInt(_ what: String = "an integer", maxBytes: Int = 8) throws -> Int64 {
        let start = offset
        let control = try byte(what)
        let negative = control & 0x80 != 0
        let size = Int(control & 0x0F)
        guard size > 0, size <= maxBytes, control & 0x70 == 0 else {
            offset = start
            throw error(.malformed, "bad integer control byte 0x\(String(control, radix: 16)) while reading \(what)")
        }
        guard remaining >= size else {
            offset = start
            throw error(.truncated, "file ends inside \(what)")
        }
        var value: UInt64 = 0
        for i in stride(from: size - 1, through: 0, by: -1) {
            value = (value << 8) | UInt64(bytes[offset + i])
        }
        offset += size
        if negative {
            guard value <= UInt64(Int64.max) else { offset = start; throw error(.malformed, "\(what) out of range") }
            return -Int64(value)
        }
        guard value <= UInt64(Int64.max) else { offset = start; throw error(.malformed, "\(what) out of range") }
        return Int64(value)
    }

    /// A packed integer used as a count or dimension: non-negative and at most `limit`.
    public mutating func readCount(_ what: String, limit: Int64 = 1 << 31) throws -> Int {
        let start = offset
        let v = try readInt(what)
        guard v >= 0, v <= limit else {
            offset = start
            throw error(.malformed, "\(what) is \(v), outside 0...\(limit)")
        }
        return Int(v)
    }

    public mutating func readBool(_ what: String = "a bool") throws -> Bool {
        let start = offset
        let b = try byte(what)
        switch b {
        case UInt8(ascii: "1"): return true
        case UInt8(ascii: "0"): return false
        default:
            offset = start
            throw error(.malformed, "bad bool byte 0x\(String(b, radix: 16)) while reading \(what)")
        }
    }

    /// dlib's portable float: mantissa (int64) · 2^exponent (int16), with sentinels for inf and NaN.
    public mutating func readDouble(_ what: String = "a float") throws -> Double {
        guard offset < bytes.count else { throw error(.truncated, "file ends while reading \(what)") }
        guard bytes[offset] & 0x70 == 0 else {
            throw error(.malformed, "\(what) uses dlib's old ASCII float format, which this reader does not accept")
        }
        let mantissa = try readInt("mantissa of \(what)")
        let exponent = try readInt("exponent of \(what)", maxBytes: 2)
        switch exponent {
        case 32000: return .infinity
        case 32001: return -.infinity
        case 32002: return .nan
        default: return scalbn(Double(mantissa), Int(exponent))
        }
    }

    /// As `readDouble`, but converted the way dlib converts to `float` (`ldexp((float)mantissa, exponent)`).
    public mutating func readFloat(_ what: String = "a float") throws -> Float {
        guard offset < bytes.count else { throw error(.truncated, "file ends while reading \(what)") }
        guard bytes[offset] & 0x70 == 0 else {
            throw error(.malformed, "\(what) uses dlib's old ASCII float format, which this reader does not accept")
        }
        let mantissa = try readInt("mantissa of \(what)")
        let exponent = try readInt("exponent of \(what)", maxBytes: 2)
        switch exponent {
        case 32000: return .infinity
        case 32001: return -.infinity
        case 32002: return .nan
        default: return scalbnf(Float(mantissa), Int32(exponent))
        }
    }

    public mutating func readString(_ what: String = "a string", limit: Int = 1 << 20) throws -> String {
        let start = offset
        let n = try readCount("length of \(what)", limit: Int64(limit))
        guard remaining >= n else { offset = start; throw error(.truncated, "file ends inside \(what)") }
        let s = String(decoding: bytes[offset ..< offset + n], as: UTF8.self)
        offset += n
        return s
    }

    /// A `resizable_tensor` record: version 2, then n, k, nr, nc, then n·k·nr·nc little-endian float32.
    public mutating func readTensor(_ what: String = "a tensor") throws -> Tensor {
        let start = offset
        let version = try readInt("version of \(what)")
        guard version == 2 else {
            offset = start
            throw error(.unexpectedVersion, "\(what) has tensor version \(version), expected 2")
        }
        let n = try readCount("num_samples of \(what)")
        let k = try readCount("k of \(what)")
        let nr = try readCount("nr of \(what)")
        let nc = try readCount("nc of \(what)")
        let (count, overflow) = n.multipliedReportingOverflow(by: k)
        let (c2, o2) = count.multipliedReportingOverflow(by: nr)
        let (c3, o3) = c2.multipliedReportingOverflow(by: nc)
        let (byteCount, o4) = c3.multipliedReportingOverflow(by: 4)
        guard !overflow, !o2, !o3, !o4 else { offset = start; throw error(.malformed, "\(what) has absurd dimensions \(n)x\(k)x\(nr)x\(nc)") }
        guard remaining >= byteCount else {
            offset = start
            throw error(.truncated, "file ends inside \(what) (\(n)x\(k)x\(nr)x\(nc) floats)")
        }
        var data = [Float](repeating: 0, count: c3)
        data.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset ..< offset + byteCount]))
            }
        }
        #if _endian(big)
        for i in data.indices { data[i] = Float(bitPattern: UInt32(littleEndian: data[i].bitPattern)) }
        #endif
        offset += byteCount
        return Tensor(n: n, k: k, nr: nr, nc: nc, data: data)
    }

    /// An `alias_tensor` record (version 1 and its four dimensions; no data).
    public mutating func readAliasTensor(_ what: String) throws -> (n: Int, k: Int, nr: Int, nc: Int) {
        let start = offset
        let version = try readInt("version of \(what)")
        guard version == 1 else {
            offset = start
            throw error(.unexpectedVersion, "\(what) has alias_tensor version \(version), expected 1")
        }
        return (try readCount("num_samples of \(what)"), try readCount("k of \(what)"),
                try readCount("nr of \(what)"), try readCount("nc of \(what)"))
    }

    /// Peeks whether the next value is a string equal to one of `names` (without consuming it).
    public func peekString(oneOf names: [String]) -> String? {
        var copy = self
        guard let s = try? copy.readString("a record name", limit: 256) else { return nil }
        return names.contains(s) ? s : nil
    }
}
