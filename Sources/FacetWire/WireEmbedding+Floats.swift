/// Why a wire embedding is not usable.
public enum WireEmbeddingError: Error, Sendable, Hashable, CustomStringConvertible {
    case dimensionMismatch(declared: UInt32, values: Int)
    case dimensionTooLarge(Int, limit: Int)
    case empty
    case notFinite(index: Int)
    case modelMismatch(expected: String, got: String)
    case byteCountNotMultipleOfFour(Int)

    public var description: String {
        switch self {
        case .dimensionMismatch(let d, let n): return "embedding declares dimension \(d) but holds \(n) values"
        case .dimensionTooLarge(let n, let limit): return "embedding dimension \(n) exceeds \(limit)"
        case .empty: return "embedding holds no values"
        case .notFinite(let i): return "embedding value \(i) is not finite"
        case .modelMismatch(let e, let g): return "embedding of model version '\(g)', expected '\(e)'"
        case .byteCountNotMultipleOfFour(let n): return "\(n) bytes are not a whole number of float32 values"
        }
    }

    /// The error reply for this failure.
    public var facetError: FacetError {
        switch self {
        case .modelMismatch, .dimensionTooLarge: return FacetError(.modelMismatch, description, field: "embedding")
        default: return FacetError(.invalidArgument, description, field: "embedding")
        }
    }
}

extension WireEmbedding {
    /// An embedding of `values` (dimension = values.count) from model `modelVersion`.
    public init(values: [Float], modelVersion: String) {
        self.init()
        self.values = values
        self.dimension = UInt32(values.count)
        self.modelVersion = modelVersion
    }

    /// An embedding from packed little-endian float32 bytes (as stored in LMDB records).
    public init(littleEndianBytes bytes: some Collection<UInt8>, modelVersion: String) throws(WireEmbeddingError) {
        guard bytes.count % 4 == 0 else { throw .byteCountNotMultipleOfFour(bytes.count) }
        var out = [Float]()
        out.reserveCapacity(bytes.count / 4)
        var it = bytes.makeIterator()
        while let b0 = it.next(), let b1 = it.next(), let b2 = it.next(), let b3 = it.next() {
            let bits = UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16 | UInt32(b3) << 24
            out.append(Float(bitPattern: bits))
        }
        self.init(values: out, modelVersion: modelVersion)
    }

    /// The values as packed little-endian float32 bytes.
    public var littleEndianBytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 4)
        for v in values {
            let bits = v.bitPattern
            out.append(UInt8(truncatingIfNeeded: bits))
            out.append(UInt8(truncatingIfNeeded: bits >> 8))
            out.append(UInt8(truncatingIfNeeded: bits >> 16))
            out.append(UInt8(truncatingIfNeeded: bits >> 24))
        }
        return out
    }

    /// The values after checking the embedding: non-empty, declared dimension equal to the count
    /// (a dimension of 0 is taken as "not declared"), at most `maxDimension`, every value finite,
    /// and — when `expectedModelVersion` is given — from that model.
    public func validatedValues(expectedDimension: Int? = nil, expectedModelVersion: String? = nil,
                                maxDimension: Int = WireProtocol.maxEmbeddingDimension)
        throws(WireEmbeddingError) -> [Float]
    {
        if values.isEmpty { throw .empty }
        if values.count > maxDimension { throw .dimensionTooLarge(values.count, limit: maxDimension) }
        if dimension != 0 && Int(dimension) != values.count { throw .dimensionMismatch(declared: dimension, values: values.count) }
        if let expectedDimension, values.count != expectedDimension {
            throw .dimensionMismatch(declared: UInt32(expectedDimension), values: values.count)
        }
        if let expectedModelVersion, modelVersion != expectedModelVersion {
            throw .modelMismatch(expected: expectedModelVersion, got: modelVersion)
        }
        for (i, v) in values.enumerated() where !v.isFinite { throw .notFinite(index: i) }
        return values
    }
}
