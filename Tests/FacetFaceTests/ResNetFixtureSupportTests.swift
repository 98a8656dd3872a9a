import CPNG
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

    /// Decodes a fixture PNG to RGB with libpng's simplified API.
    static func png(_ relative: String) throws -> RGBImage {
        let data = try Data(contentsOf: root.appendingPathComponent(relative))
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, data.count) }
        guard ok != 0 else { throw FixtureError.missing("cannot read PNG header of \(relative)") }
        image.format = UInt32(PNG_FORMAT_RGB)
        let w = Int(image.width), h = Int(image.height)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        let done = pixels.withUnsafeMutableBytes { px in
            png_image_finish_read(&image, nil, px.baseAddress, Int32(w * 3), nil)
        }
        guard done != 0 else { png_image_free(&image); throw FixtureError.missing("cannot decode PNG \(relative)") }
        return RGBImage(width: w, height: h, pixels: pixels)
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
