import CPNG
import Foundation

/// A MaskTheFace template in FacetMasking's form: luminance and alpha (the renderer recolours it), a mip
/// pyramid for antialiased minification, and the six anchor points a…f (top-left, nose, top-right,
/// lower-left, chin, lower-right) in level-0 pixel coordinates.
struct MaskTemplate: Sendable {
    struct Level: Sendable {
        let width: Int, height: Int
        /// Luminance premultiplied by alpha, and alpha, both in `[0, 1]`.
        let lum: [Float], alpha: [Float]
    }
    let name: String
    let levels: [Level]
    let anchors: [Vec2]   // a, b, c, d, e, f
    /// Mean luminance of the opaque part: the shading of a pixel is its luminance over this.
    let referenceLuminance: Float

    var width: Int { levels[0].width }
    var height: Int { levels[0].height }

    init(name: String, width: Int, height: Int, greyAlpha rgba: [UInt8], anchors: [Vec2]) {
        self.name = name
        self.anchors = anchors
        var lum = [Float](repeating: 0, count: width * height), alpha = lum
        var sum: Float = 0, n: Float = 0
        for i in 0..<(width * height) {
            let a = Float(rgba[4 * i + 3]) / 255
            let l = (0.299 * Float(rgba[4 * i]) + 0.587 * Float(rgba[4 * i + 1]) + 0.114 * Float(rgba[4 * i + 2])) / 255
            lum[i] = l * a; alpha[i] = a
            if a > 0.5 { sum += l; n += 1 }
        }
        referenceLuminance = n > 0 ? max(sum / n, 0.02) : 1
        var levels = [Level(width: width, height: height, lum: lum, alpha: alpha)]
        while let last = levels.last, last.width >= 8 && last.height >= 8 {
            levels.append(MaskTemplate.halve(last))
        }
        self.levels = levels
    }

    static func halve(_ l: Level) -> Level {
        let w = (l.width + 1) / 2, h = (l.height + 1) / 2
        var lum = [Float](repeating: 0, count: w * h), alpha = lum
        for y in 0..<h {
            for x in 0..<w {
                var sl: Float = 0, sa: Float = 0
                for dy in 0..<2 {
                    for dx in 0..<2 {
                        let sx = min(2 * x + dx, l.width - 1), sy = min(2 * y + dy, l.height - 1)
                        sl += l.lum[sy * l.width + sx]; sa += l.alpha[sy * l.width + sx]
                    }
                }
                lum[y * w + x] = sl / 4; alpha[y * w + x] = sa / 4
            }
        }
        return Level(width: w, height: h, lum: lum, alpha: alpha)
    }
}

/// A tileable RGB pattern, values in `[0, 1]`, with its box-filtered mip levels.
struct MaskPattern: Sendable {
    let width: Int, height: Int
    let rgb: [Float]
    /// Half-size versions, each 2×2 box-filtered from the one before (while both sides are even and ≥ 8).
    let coarser: [MaskPattern]

    init(width: Int, height: Int, rgb: [Float]) {
        self.width = width; self.height = height; self.rgb = rgb
        var levels: [MaskPattern] = []
        var (w, h, cur) = (width, height, rgb)
        while w % 2 == 0 && h % 2 == 0 && w >= 16 && h >= 16 {
            let nw = w / 2, nh = h / 2
            var next = [Float](repeating: 0, count: nw * nh * 3)
            for y in 0..<nh {
                for x in 0..<nw {
                    for c in 0..<3 {
                        let s = cur[((2 * y) * w + 2 * x) * 3 + c] + cur[((2 * y) * w + 2 * x + 1) * 3 + c]
                            + cur[((2 * y + 1) * w + 2 * x) * 3 + c] + cur[((2 * y + 1) * w + 2 * x + 1) * 3 + c]
                        next[(y * nw + x) * 3 + c] = s / 4
                    }
                }
            }
            levels.append(MaskPattern(flat: nw, nh, next))
            (w, h, cur) = (nw, nh, next)
        }
        coarser = levels
    }

    private init(flat w: Int, _ h: Int, _ rgb: [Float]) {
        width = w; height = h; self.rgb = rgb; coarser = []
    }

    /// The level to sample when `texelsPerPixel` level-0 texels fall on one image pixel.
    func level(texelsPerPixel: Double) -> MaskPattern {
        guard texelsPerPixel >= 2, !coarser.isEmpty else { return self }
        let k = min(coarser.count, Int(floor(log2(texelsPerPixel))))
        return coarser[k - 1]
    }

    /// Bilinear sample with wrap-around at `(u, v)` in pattern pixels.
    func sample(_ u: Double, _ v: Double) -> (Float, Float, Float) {
        let fx = u - 0.5, fy = v - 0.5
        let x0 = Int(floor(fx)), y0 = Int(floor(fy))
        let tx = Float(fx - floor(fx)), ty = Float(fy - floor(fy))
        func wrap(_ i: Int, _ n: Int) -> Int { let m = i % n; return m < 0 ? m + n : m }
        let xa = wrap(x0, width), xb = wrap(x0 + 1, width), ya = wrap(y0, height), yb = wrap(y0 + 1, height)
        var out: (Float, Float, Float) = (0, 0, 0)
        for c in 0..<3 {
            let p00 = rgb[(ya * width + xa) * 3 + c], p10 = rgb[(ya * width + xb) * 3 + c]
            let p01 = rgb[(yb * width + xa) * 3 + c], p11 = rgb[(yb * width + xb) * 3 + c]
            let v = (p00 * (1 - tx) + p10 * tx) * (1 - ty) + (p01 * (1 - tx) + p11 * tx) * ty
            if c == 0 { out.0 = v } else if c == 1 { out.1 = v } else { out.2 = v }
        }
        return out
    }
}

/// The bundled MaskTheFace templates (MIT, © 2020 Aqeel Anwar; see `Resources/LICENSE.MaskTheFace`) and
/// fabric patterns, decoded once.
///
/// The resources are found in the SwiftPM resource bundle, or in the folder named by the environment
/// variable `FACET_MASK_RESOURCES` (which wins, for installed binaries).
public final class MaskTemplateLibrary: Sendable {
    let templates: [String: MaskTemplate]
    let patterns: [String: MaskPattern]

    /// The library from the bundled resources, loaded on first use.
    public static func bundled() throws(MaskingError) -> MaskTemplateLibrary {
        switch shared {
        case .success(let library): return library
        case .failure(let error): throw error
        }
    }

    private static let shared: Result<MaskTemplateLibrary, MaskingError> = {
        do {
            return .success(try MaskTemplateLibrary(directory: resourceDirectory()))
        } catch let error as MaskingError {
            return .failure(error)
        } catch {
            return .failure(.resourceMissing("\(error)"))
        }
    }()

    static func resourceDirectory() -> URL {
        if let env = ProcessInfo.processInfo.environment["FACET_MASK_RESOURCES"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return Bundle.module.bundleURL.appendingPathComponent("Resources")
    }

    /// Loads `templates.json`, the template PNGs it names and the pattern PNGs from `directory`.
    public init(directory: URL) throws(MaskingError) {
        let indexURL = directory.appendingPathComponent("templates.json")
        guard let data = try? Data(contentsOf: indexURL) else { throw .resourceMissing(indexURL.path) }
        struct Entry: Decodable { let file: String; let width: Int; let height: Int; let anchors: [String: [Double]] }
        let index: [String: Entry]
        do { index = try JSONDecoder().decode([String: Entry].self, from: data) } catch {
            throw .resourceUnreadable(indexURL.path, reason: "\(error)")
        }
        var templates: [String: MaskTemplate] = [:]
        for (name, entry) in index {
            let url = directory.appendingPathComponent(entry.file)
            let (w, h, rgba) = try decodePNGRGBA(url)
            guard w == entry.width, h == entry.height else {
                throw .resourceUnreadable(url.path, reason: "is \(w)x\(h), templates.json says \(entry.width)x\(entry.height)")
            }
            var anchors: [Vec2] = []
            for key in ["a", "b", "c", "d", "e", "f"] {
                guard let p = entry.anchors[key], p.count == 2 else {
                    throw .resourceUnreadable(indexURL.path, reason: "\(name) lacks anchor \(key)")
                }
                anchors.append(Vec2(p[0], p[1]))
            }
            templates[name] = MaskTemplate(name: name, width: w, height: h, greyAlpha: rgba, anchors: anchors)
        }
        var patterns: [String: MaskPattern] = [:]
        for name in MaskTexture.patternNames {
            let url = directory.appendingPathComponent("textures/\(name).png")
            let (w, h, rgba) = try decodePNGRGBA(url)
            var rgb = [Float](repeating: 0, count: w * h * 3)
            for i in 0..<(w * h) { for c in 0..<3 { rgb[i * 3 + c] = Float(rgba[i * 4 + c]) / 255 } }
            patterns[name] = MaskPattern(width: w, height: h, rgb: rgb)
        }
        self.templates = templates
        self.patterns = patterns
    }

    /// Names of the loaded templates (`surgical`, `surgical_left`, …).
    public var templateNames: [String] { templates.keys.sorted() }
}

/// Decodes a PNG file to 8-bit non-premultiplied RGBA with libpng's simplified API.
/// The corresponding C functions are `png_image_begin_read_from_memory` and `png_image_finish_read`.
func decodePNGRGBA(_ url: URL) throws(MaskingError) -> (Int, Int, [UInt8]) {
    guard let data = try? Data(contentsOf: url) else { throw .resourceMissing(url.path) }
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    let ok = data.withUnsafeBytes { raw -> Int32 in
        png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count)
    }
    guard ok != 0 else { throw .resourceUnreadable(url.path, reason: "not a PNG") }
    let width = Int(image.width), height = Int(image.height)
    guard width > 0, height > 0, width * height <= 16 << 20 else {
        png_image_free(&image)
        throw .resourceUnreadable(url.path, reason: "size \(width)x\(height) out of range")
    }
    image.format = PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA   // PNG_FORMAT_RGBA (a compound macro Swift does not import)
    var pixels = [UInt8](repeating: 0, count: width * height * 4)
    let done = pixels.withUnsafeMutableBytes { buf in
        png_image_finish_read(&image, nil, buf.baseAddress, 0, nil)
    }
    guard done != 0 else {
        png_image_free(&image)
        throw .resourceUnreadable(url.path, reason: "libpng could not decode it")
    }
    return (width, height, pixels)
}
