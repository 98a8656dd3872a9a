/// A reader of dlib's serialisation primitives (`dlib/serialize.h`, `dlib/float_details.h`), enough for the
/// shape predictor: packed integers (control byte: low nibble = byte count, 0x80 = negative, then little-endian
/// bytes), floats as packed int64 mantissa + packed int16 exponent (`value = mantissa * 2^exponent`), and
/// length-prefixed vectors. Bounds are checked on every read; malformed input throws, never traps.
///
/// Why not FacetNN's `DlibReader`: the 68-point model holds ~16 million packed floats, and `DlibReader.readFloat`
/// builds a description string per value; with it the 68-point model took 11–12 s to load, with this reader 1.8 s
/// (dlib's own C++ loader: 2.3–3.2 s), measured side by side on this machine. Networks (few, large raw tensors)
/// are read by `DlibReader`; this covers only the shape predictor's scalar-heavy format.
struct DlibStreamReader {
    struct Failure: Error { let reason: String; let offset: Int }

    private let bytes: [UInt8]
    private(set) var offset: Int = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func readInt() throws(Failure) -> Int64 {
        guard offset < bytes.count else { throw Failure(reason: "unexpected end of file", offset: offset) }
        let control = bytes[offset]
        let size = Int(control & 0x0F)
        let negative = (control & 0x80) != 0
        guard size >= 1, size <= 8 else { throw Failure(reason: "bad integer control byte 0x\(String(control, radix: 16))", offset: offset) }
        guard offset + 1 + size <= bytes.count else { throw Failure(reason: "unexpected end of file", offset: offset) }
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(bytes[offset + 1 + i]) << (8 * UInt64(i)) }
        offset += 1 + size
        guard value <= UInt64(Int64.max) else { throw Failure(reason: "integer out of range", offset: offset) }
        return negative ? -Int64(value) : Int64(value)
    }

    /// A non-negative count or index, bounded by `limit` so corrupt sizes cannot trigger huge allocations.
    mutating func readCount(limit: Int) throws(Failure) -> Int {
        let v = try readInt()
        guard v >= 0, v <= Int64(limit) else { throw Failure(reason: "count \(v) out of range 0...\(limit)", offset: offset) }
        return Int(v)
    }

    mutating func readFloat() throws(Failure) -> Float {
        let mantissa = try readInt()
        let exponent = try readInt()
        switch exponent {
        case 32000: return .infinity
        case 32001: return -.infinity
        case 32002: return .nan
        default:
            guard exponent > -32768, exponent < 32000 else { throw Failure(reason: "bad float exponent \(exponent)", offset: offset) }
            // float_details::convert_to_T<float>: ldexp((float)mantissa, exponent).
            return Float(sign: .plus, exponent: Int(exponent), significand: Float(mantissa))
        }
    }

    /// dlib `matrix<float,0,1>`: packed -rows, -cols (new format; positive = old format), then row-major floats.
    mutating func readFloatColumn(limit: Int) throws(Failure) -> [Float] {
        var rows = try readInt()
        var cols = try readInt()
        if rows < 0 || cols < 0 { rows = -rows; cols = -cols }
        guard cols == 1 || rows == 0, rows <= Int64(limit) else {
            throw Failure(reason: "expected a column vector, got \(rows)x\(cols)", offset: offset)
        }
        var out = [Float](); out.reserveCapacity(Int(rows))
        for _ in 0..<rows { out.append(try readFloat()) }
        return out
    }
}
