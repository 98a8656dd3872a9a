import Foundation

/// The JSON Lines record `facet embed --json` prints for one image, written by hand so key order and number
/// formatting are stable: `{"image": PATH, "width": W, "height": H, "faces": [{"box": [l, t, r, b],
/// "confidence": C, "landmarks": [[x, y], ...], "embedding": [...]}]}`, or for a failure
/// `{"image": PATH, "error": {"code": "...", "message": "..."}}`.
/// Extra per-face fields (e.g. the mask score) are appended through `extraFaceFields`.
public enum EmbedReport {
    public static func line(image path: String, width: Int, height: Int, faces: [FaceAnalysis],
                            extraFaceFields: (Int) -> [(String, String)] = { _ in [] }) -> String {
        var s = "{\"image\": \(quote(path)), \"width\": \(width), \"height\": \(height), \"faces\": ["
        for (i, f) in faces.enumerated() {
            if i > 0 { s += ", " }
            let b = f.box
            s += "{\"box\": [\(b.left), \(b.top), \(b.right), \(b.bottom)], \"confidence\": \(number(f.confidence)), "
            s += "\"landmarks\": [" + f.landmarks.map { "[\(number($0.x)), \(number($0.y))]" }.joined(separator: ", ") + "], "
            s += "\"embedding\": [" + f.embedding.map { number(Double($0), float: $0) }.joined(separator: ", ") + "]"
            for (key, json) in extraFaceFields(i) { s += ", \(quote(key)): \(json)" }
            s += "}"
        }
        return s + "]}"
    }

    public static func errorLine(image path: String, code: String, message: String) -> String {
        "{\"image\": \(quote(path)), \"error\": {\"code\": \(quote(code)), \"message\": \(quote(message))}}"
    }

    /// Integral values print without a fraction (dlib landmarks are integers); others as the shortest
    /// round-tripping decimal. Non-finite values (never produced) print as null to keep the JSON valid.
    static func number(_ v: Double, float: Float? = nil) -> String {
        guard v.isFinite else { return "null" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        if let f = float { return "\(f)" }
        return "\(v)"
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
