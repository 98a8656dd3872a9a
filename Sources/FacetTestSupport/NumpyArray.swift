import Foundation

/// A float32 array read from a NumPy `.npy` file (version 1/2/3 headers, little-endian `<f4`, C order).
public struct NumpyArray: Sendable {
    public var shape: [Int]
    public var values: [Float]

    public enum ReadError: Error, CustomStringConvertible {
        case unreadable(path: String)
        case malformed(path: String, reason: String)
        public var description: String {
            switch self {
            case .unreadable(let p): "cannot read \(p)"
            case .malformed(let p, let r): "\(p) is not a float32 .npy file: \(r)"
            }
        }
    }

    public init(contentsOf url: URL) throws {
        guard let data = try? Data(contentsOf: url) else { throw ReadError.unreadable(path: url.path) }
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw ReadError.malformed(path: url.path, reason: "missing magic")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        if major == 1 { headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; headerStart = 10 }
        else {
            guard bytes.count >= 12 else { throw ReadError.malformed(path: url.path, reason: "short header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24; headerStart = 12
        }
        guard headerStart + headerLength <= bytes.count,
              let header = String(bytes: bytes[headerStart..<headerStart + headerLength], encoding: .ascii) else {
            throw ReadError.malformed(path: url.path, reason: "bad header")
        }
        guard header.contains("'descr': '<f4'") else { throw ReadError.malformed(path: url.path, reason: "dtype is not <f4") }
        guard header.contains("'fortran_order': False") else { throw ReadError.malformed(path: url.path, reason: "Fortran order") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw ReadError.malformed(path: url.path, reason: "no shape")
        }
        let shape = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let start = headerStart + headerLength
        guard bytes.count - start == count * 4 else {
            throw ReadError.malformed(path: url.path, reason: "expected \(count * 4) data bytes, found \(bytes.count - start)")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { src in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start...]))
        } }
        self.shape = shape
        self.values = values
    }
}
