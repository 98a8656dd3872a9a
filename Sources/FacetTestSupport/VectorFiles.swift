import Foundation

/// The `.fvecs` / `.ivecs` formats of the ANN benchmarks (SIFT1M, GIST1M): each vector is an Int32
/// dimension followed by that many little-endian Float32 (or Int32) values.
public enum VectorFiles {
    public enum FormatError: Error, CustomStringConvertible {
        case unreadable(String)
        case malformed(String, reason: String)
        public var description: String {
            switch self {
            case .unreadable(let p): "cannot read \(p)"
            case .malformed(let p, let r): "\(p): \(r)"
            }
        }
    }

    /// Reads an `.fvecs` file: (dimension, rows × dimension floats). `limit` caps the rows read.
    public static func readFvecs(_ path: String, limit: Int? = nil) throws -> (dimension: Int, values: [Float]) {
        let (d, raw) = try read(path, limit: limit)
        return (d, raw.map { Float(bitPattern: $0) })
    }

    /// Reads an `.ivecs` file: rows of Int32.
    public static func readIvecs(_ path: String, limit: Int? = nil) throws -> [[Int32]] {
        let (d, raw) = try read(path, limit: limit)
        guard d > 0 else { return [] }
        return stride(from: 0, to: raw.count, by: d).map { Array(raw[$0..<$0 + d]).map { Int32(bitPattern: $0) } }
    }

    private static func read(_ path: String, limit: Int?) throws -> (Int, [UInt32]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError.unreadable(path) }
        guard data.count >= 4 else { throw FormatError.malformed(path, reason: "empty file") }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> (Int, [UInt32]) in
            let d = Int(Int32(littleEndian: raw.loadUnaligned(as: Int32.self)))
            guard d > 0 && d <= 1 << 20 else { throw FormatError.malformed(path, reason: "dimension \(d)") }
            let rowBytes = 4 * (d + 1)
            guard raw.count % rowBytes == 0 else { throw FormatError.malformed(path, reason: "size \(raw.count) is not a multiple of \(rowBytes)") }
            let rows = Swift.min(raw.count / rowBytes, limit ?? Int.max)
            var out = [UInt32](repeating: 0, count: rows * d)
            for r in 0..<rows {
                let header = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: r * rowBytes, as: Int32.self)))
                guard header == d else { throw FormatError.malformed(path, reason: "row \(r) has dimension \(header), expected \(d)") }
                for j in 0..<d { out[r * d + j] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: r * rowBytes + 4 + 4 * j, as: UInt32.self)) }
            }
            return (d, out)
        }
    }

    public static func writeFvecs(_ path: String, dimension: Int, values: [Float]) throws {
        try write(path, dimension: dimension, words: values.map(\.bitPattern))
    }

    public static func writeIvecs(_ path: String, rows: [[Int32]]) throws {
        let d = rows.first?.count ?? 0
        try write(path, dimension: d, words: rows.flatMap { $0.map { UInt32(bitPattern: $0) } })
    }

    private static func write(_ path: String, dimension d: Int, words: [UInt32]) throws {
        var data = Data(capacity: words.count * 4 + (words.count / Swift.max(d, 1)) * 4)
        let rows = d == 0 ? 0 : words.count / d
        for r in 0..<rows {
            withUnsafeBytes(of: Int32(d).littleEndian) { data.append(contentsOf: $0) }
            words[r * d..<(r + 1) * d].withUnsafeBytes { _ in }
            var row = Array(words[r * d..<(r + 1) * d]).map { $0.littleEndian }
            row.withUnsafeMutableBytes { data.append(contentsOf: $0) }
        }
        guard FileManager.default.createFile(atPath: path, contents: data) else { throw FormatError.unreadable(path) }
    }
}
