import FacetImaging
import Foundation
import Testing

/// Fixture access for the CNN golden tests (Fixtures/nn, written by scripts/make-nn-goldens.py).
enum NNFixtures {
    static var root: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures/nn")
    }

    /// The model folder: $FACET_MODELS or ./models. Tests fail (not skip) when a model is missing.
    static func modelPath(_ name: String) throws -> String {
        let dir = ProcessInfo.processInfo.environment["FACET_MODELS"] ?? FileManager.default.currentDirectoryPath + "/models"
        let path = dir + "/" + name
        guard FileManager.default.fileExists(atPath: path) else {
            throw FixtureError.missing("model file \(path) not found: run scripts/setup.sh or set FACET_MODELS")
        }
        return path
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent(name))
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FixtureError.missing("\(name) is not a JSON object")
        }
        return obj
    }

    /// Decodes a fixture image through FacetImaging (the decoder Facet uses everywhere).
    static func png(_ relative: String) throws -> RGBImage {
        try ImageDecoder().decodeFile(atPath: root.appendingPathComponent(relative).path)
    }

    enum FixtureError: Error, CustomStringConvertible {
        case missing(String)
        var description: String { switch self { case .missing(let s): return s } }
    }
}

func l2(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var s = 0.0
    for i in a.indices { let d = Double(a[i]) - b[i]; s += d * d }
    return s.squareRoot()
}
