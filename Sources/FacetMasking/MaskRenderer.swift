import FacetFace
import FacetImaging
import Foundation

/// Draws synthetic masks on faces from their 68 dlib landmarks.
///
/// Template masks (surgical, cloth, N95, KN95, gas) follow MaskTheFace (Anwar & Raychowdhury 2020): six
/// anchors are found on the face — `b` on the nose bridge (or under the nose), `a`/`c` where the line
/// across the face through `b` meets the jaw, `d`/`f` where a lower line meets it, `e` on the chin — and
/// the template is warped onto them by the least-squares homography of its own six anchors. The frontal
/// template or its `_left`/`_right` variant is chosen from the head yaw measured on the landmarks.
/// Procedural masks (gaiter, bandana) are polygons built from the same anchors and the jaw contour.
/// Every mask is then clipped, with antialiased edges, to the lower face (the jaw pushed out a little,
/// plus some neck), recoloured from the template's luminance (so its folds and print stay), patterned,
/// lit to match the face and alpha-blended.
public struct MaskRenderer: Sendable {
    public let library: MaskTemplateLibrary
    /// |yaw| above which the `_left`/`_right` template replaces the frontal one (MaskTheFace switches at
    /// about 13°; a yaw proxy of 0.3 is about 20° on LFW faces).
    public var yawThreshold: Double = 0.3

    /// A renderer over the bundled templates.
    public init() throws(MaskingError) { library = try MaskTemplateLibrary.bundled() }

    public init(library: MaskTemplateLibrary) { self.library = library }

    /// Draws the mask `spec` on the face with these landmarks.
    /// - Parameters:
    ///   - image: the photo; returned with the mask blended in.
    ///   - landmarks: the 68 points of dlib's `shape_predictor_68_face_landmarks` in image coordinates
    ///     (they may lie partly outside the image).
    ///   - spec: type, colour, pattern, placement and seed.
    /// - Returns: the masked image and the mask's opacity per pixel.
    /// - Throws: `MaskingError` for landmarks that are not 68 finite points or span no area, an empty
    ///   image, or a pattern name that is not bundled.
    public func apply(to image: RGBImage, landmarks: [LandmarkPoint], spec: MaskSpec) throws(MaskingError) -> MaskedImage {
        guard image.width > 0, image.height > 0 else { throw .emptyImage }
        guard spec.type.placements.contains(spec.placement) else {
            throw .unsupportedPlacement(spec.type, spec.placement)
        }
        let face = try FaceGeometry(landmarks: landmarks)
        var pattern: MaskPattern?
        if case .pattern(let name) = spec.texture {
            guard let p = library.patterns[name] else { throw .unknownPattern(name) }
            pattern = p
        }
        var rng = SplitMix64(seed: spec.seed)
        let draw = RandomDraws(&rng)

        // Lighting: the mask takes some of the face's brightness, measured before drawing.
        let light = faceLight(image, face)

        var template: (MaskTemplate, mirrored: Bool)?
        var variant = spec.type.rawValue
        if let base = spec.type.templateName {
            var side = face.yaw > yawThreshold ? "_right" : (face.yaw < -yawThreshold ? "_left" : "")
            if !spec.type.hasSideTemplates { side = "" }
            let stored = side.isEmpty ? base : base + "_left"
            guard let t = library.templates[stored] else { throw .resourceMissing("template \(stored)") }
            template = (t, side == "_right")
            variant = base + side
        }
        // The template's anchors a…f in its own pixel frame; a `_right` template is the mirrored `_left`
        // one, so its anchors are mirrored and swapped left for right.
        var src: [Vec2] = []
        if let (t, mirrored) = template {
            src = t.anchors
            if mirrored {
                let w = Double(t.width)
                let m = src.map { Vec2(w - $0.x, $0.y) }
                src = [m[2], m[1], m[0], m[5], m[4], m[3]]
            }
        }

        // Anchors on the face.
        let b0: Vec2
        switch spec.placement {
        case .overNose, .tilted: b0 = face[28].lerp(face[30], draw.bridge)
        case .belowNose: b0 = face[33].lerp(face[51], draw.underNose)
        }
        let e0 = face.chin(below: b0) + face.down * (draw.chinDrop * face.height)
        // The side anchors sit on the jaw at the heights the template gives them, as fractions of the
        // nose-to-chin anchor distance (MaskTheFace's surgical template: a, c ≈ 0.17; d, f ≈ 0.67).
        var sideLevels = [0.05, 0.05, 0.62, 0.62]   // a, c, d, f
        if !src.isEmpty {
            let ta = src
            let span = max(ta[4].y - ta[1].y, 1e-6)
            sideLevels = [ta[0].y, ta[2].y, ta[3].y, ta[5].y].map { min(max(($0 - ta[1].y) / span, 0), 0.9) }
        }
        let aEnd = face.jawEnds(across: b0.lerp(e0, sideLevels[0])).left
        let cEnd = face.jawEnds(across: b0.lerp(e0, sideLevels[1])).right
        let dEnd = face.jawEnds(across: b0.lerp(e0, sideLevels[2])).left
        let fEnd = face.jawEnds(across: b0.lerp(e0, sideLevels[3])).right
        var anchors = [aEnd, b0, cEnd, dEnd, e0, fEnd]
        for i in 0..<6 { anchors[i] = anchors[i] + Vec2(draw.jitter[2 * i], draw.jitter[2 * i + 1]) * face.width }
        let pivot = b0.lerp(e0, 0.5)
        let tilt = spec.placement == .tilted ? draw.tiltDegrees * .pi / 180 : 0
        if tilt != 0 { anchors = anchors.map { $0.rotated(by: tilt, about: pivot) } }

        // The region a mask may cover, antialiased.
        let procedural = template == nil
        let clipPolygon = face.coverableRegion(margin: 0.06, chinDrop: procedural ? 0.22 : 0.08)
        var clip = rasterize(clipPolygon, imageWidth: image.width, imageHeight: image.height)
        // Masks never reach the eyes: nothing above a line across the face a little under the lowest
        // eye landmark (antialiased over one pixel); a mask worn under the nose stays under the nostrils.
        var eyeLine = (36...47).map { face[$0].dot(face.down) }.max()! + 0.05 * face.height
        if spec.placement == .belowNose {
            eyeLine = max(eyeLine, (31...35).map { face[$0].dot(face.down) }.reduce(0, +) / 5)
        }
        for row in 0..<clip.height {
            for col in 0..<clip.width {
                let p = Vec2(Double(clip.x0 + col) + 0.5, Double(clip.y0 + row) + 0.5)
                let keep = Float(min(1, max(0, p.dot(face.down) - eyeLine + 0.5)))
                clip.values[row * clip.width + col] *= keep
            }
        }

        let shading = Shading(draw: draw, light: light, contrast: draw.contrast)
        var out = image
        var alpha = [UInt8](repeating: 0, count: image.width * image.height)
        let outline: [Vec2]
        // Patterns: 1.5·scale tiles across the mask, sampled from the mip level that fits the mask's size
        // in pixels (no moiré on small faces).
        let tiles = 1.5 * draw.patternScale
        if let p = pattern {
            let maskPixels = max(1, face.width)
            pattern = p.level(texelsPerPixel: tiles * Double(p.width) / maskPixels)
        }
        let paint = Paint(color: spec.color, texture: spec.texture, pattern: pattern,
                          tiles: tiles, offset: (draw.patternU, draw.patternV))

        if let (t, mirrored) = template {
            guard let h = Homography.fit(from: src, to: anchors), let hInv = h.inverse else {
                throw .degenerateFace("no homography fits the anchors")
            }
            outline = [0, 1, 2, 5, 4, 3].map { h.apply(src[$0]) }
            // Template texels per image pixel, from the areas of the two anchor hexagons.
            let areaT = abs(shoelace([0, 1, 2, 5, 4, 3].map { src[$0] }))
            let areaI = abs(shoelace(outline))
            let texelsPerPixel = areaI > 1e-9 ? (areaT / areaI).squareRoot() : 1
            let level = min(t.levels.count - 1, max(0, Int(floor(log2(max(texelsPerPixel, 1))))))
            let lv = t.levels[level]
            let toLevel = 1 / Double(1 << level)
            for row in 0..<clip.height {
                let y = clip.y0 + row
                for col in 0..<clip.width {
                    let cover = clip.values[row * clip.width + col]
                    if cover <= 0 { continue }
                    let x = clip.x0 + col
                    var q = hInv.apply(Vec2(Double(x) + 0.5, Double(y) + 0.5))
                    guard q.x.isFinite, q.y.isFinite else { continue }
                    if mirrored { q.x = Double(t.width) - q.x }
                    let (lp, a) = sampleLevel(lv, q.x * toLevel, q.y * toLevel)
                    let opacity = min(a, 1) * min(cover, 1)
                    if opacity <= 0.002 { continue }
                    let shade = shading.templateShade(lum: lp / max(a, 1e-6), reference: t.referenceLuminance)
                    let texU = q.x / Double(t.width), texV = q.y / Double(t.width)
                    let rgb = paint.color(u: texU, v: texV)
                    blend(&out, x: x, y: y, rgb: rgb, shade: shade, opacity: opacity)
                    alpha[y * image.width + x] = UInt8((opacity * 255).rounded())
                }
            }
        } else {
            let polygon = proceduralPolygon(spec.type, face: face, anchors: anchors, tilt: tilt, pivot: pivot)
            outline = polygon
            let fill = rasterize(polygon, imageWidth: image.width, imageHeight: image.height)
            let centre = anchors[1].lerp(anchors[4], 0.5)
            let across = face.across.rotated(by: tilt, about: Vec2(0, 0))
            let down = face.down.rotated(by: tilt, about: Vec2(0, 0))
            for row in 0..<fill.height {
                let y = fill.y0 + row
                for col in 0..<fill.width {
                    let f = fill.values[row * fill.width + col]
                    if f <= 0 { continue }
                    let x = fill.x0 + col
                    let cx = x - clip.x0, cy = y - clip.y0
                    guard cx >= 0, cy >= 0, cx < clip.width, cy < clip.height else { continue }
                    let opacity = min(f, 1) * min(clip.values[cy * clip.width + cx], 1)
                    if opacity <= 0.002 { continue }
                    let p = Vec2(Double(x) + 0.5, Double(y) + 0.5) - centre
                    let s = p.dot(across) / (face.width / 2), t = p.dot(down) / face.width
                    let shade = shading.fabricShade(type: spec.type, s: s, t: t)
                    let rgb = paint.color(u: s / 2 + 0.5, v: t)
                    blend(&out, x: x, y: y, rgb: rgb, shade: shade, opacity: opacity)
                    alpha[y * image.width + x] = UInt8((opacity * 255).rounded())
                }
            }
        }
        let region = MaskRegion(width: image.width, height: image.height, alpha: alpha,
                                outline: outline.map { LandmarkPoint(x: $0.x, y: $0.y) })
        return MaskedImage(image: out, maskRegion: region, variant: variant)
    }

    /// The gaiter (fabric from the nose bridge down over the jaw into the neck) and the bandana (a
    /// triangle from cheek to cheek, its tip under the chin), from the anchors and the jaw contour.
    func proceduralPolygon(_ type: MaskType, face: FaceGeometry, anchors: [Vec2], tilt: Double, pivot: Vec2) -> [Vec2] {
        let a = anchors[0], b = anchors[1], c = anchors[2], d = anchors[3], e = anchors[4], f = anchors[5]
        let centre = face.lowerFaceCentre
        func pushed(_ p: Vec2, _ amount: Double) -> Vec2 { p + (p - centre).normalized * (amount * face.width) }
        var poly: [Vec2] = []
        switch type {
        case .bandana:
            poly = [a, b - face.down * (0.02 * face.height), c, pushed(f, 0.04), e + face.down * (0.2 * face.height), pushed(d, 0.04)]
        default:   // gaiter
            // Top edge: a → b → c, sagging a little between the nose and the cheeks.
            for i in 0...8 {
                let s = Double(i) / 8
                let p = s < 0.5 ? a.lerp(b, s * 2) : b.lerp(c, (s - 0.5) * 2)
                let sag = sin(s * 2 * .pi).magnitude * 0.02 * face.height
                poly.append(p + face.down * sag)
            }
            // Down the image-right jaw, round the chin into the neck, up the image-left jaw, keeping the
            // jaw points below the top edge.
            let topNormal = face.down
            let level = b.dot(topNormal)
            for i in stride(from: 16, through: 0, by: -1) {
                var p = face[i]
                if tilt != 0 { p = p.rotated(by: tilt, about: pivot) }
                if p.dot(topNormal) <= level + 0.02 * face.height { continue }
                p = pushed(p, 0.03)
                if (4...12).contains(i) { p = p + face.down * (0.15 * face.height) }
                poly.append(p)
            }
        }
        return poly
    }
}

/// The renderer's random numbers, always drawn in the same order so a seed fixes the whole mask.
struct RandomDraws {
    let bridge: Double, underNose: Double, chinDrop: Double
    let jitter: [Double]
    let tiltDegrees: Double
    let contrast: Double
    let patternScale: Double, patternU: Double, patternV: Double
    let noise: [Double]   // 8×8 value-noise lattice in [-1, 1]
    let noisePhase: Double

    init(_ rng: inout SplitMix64) {
        bridge = rng.uniform(0.3...0.55)
        underNose = rng.uniform(0...0.2)
        chinDrop = rng.uniform(0...0.04)
        jitter = (0..<12).map { _ in rng.uniform(-0.015...0.015) }
        tiltDegrees = rng.sign() * rng.uniform(5...12)
        contrast = rng.uniform(0.8...1.2)
        patternScale = rng.uniform(0.7...1.4)
        patternU = rng.uniform(0...1)
        patternV = rng.uniform(0...1)
        noise = (0..<64).map { _ in rng.uniform(-1...1) }
        noisePhase = rng.uniform(0...(2 * .pi))
    }
}

/// How bright the mask is drawn at each point.
struct Shading {
    let draw: RandomDraws
    let light: Double
    let contrast: Double

    /// Template shading: the template's luminance over its mean, contrast-adjusted by the seed.
    func templateShade(lum: Float, reference: Float) -> Double {
        let raw = Double(lum / reference)
        return max(0, 1 + contrast * (min(raw, 1.6) - 1)) * light
    }

    /// Procedural shading over face coordinates `s` (−1 … 1 across) and `t` (down, in face widths):
    /// a cylinder falloff towards the sides, folds, and value noise for the weave.
    func fabricShade(type: MaskType, s: Double, t: Double) -> Double {
        var shade = 0.72 + 0.28 * max(0, 1 - 0.8 * s * s).squareRoot()
        switch type {
        case .bandana:
            shade *= 1 - 0.07 * max(0, sin((t * 2 - abs(s)) * 9 + draw.noisePhase))
        default:
            shade *= 1 - 0.05 * max(0, sin(t * 22 + draw.noisePhase))
        }
        shade *= 1 + 0.05 * valueNoise(s * 3.5, t * 7)
        return (1 + contrast * (shade - 1)) * light
    }

    func valueNoise(_ x: Double, _ y: Double) -> Double {
        let fx = x - floor(x), fy = y - floor(y)
        func at(_ i: Int, _ j: Int) -> Double { draw.noise[((j & 7) << 3) | (i & 7)] }
        let i = Int(floor(x)), j = Int(floor(y))
        let top = at(i, j) * (1 - fx) + at(i + 1, j) * fx
        let bottom = at(i, j + 1) * (1 - fx) + at(i + 1, j + 1) * fx
        return top * (1 - fy) + bottom * fy
    }
}

/// The base colour of the mask at texture coordinates `(u, v)` (about 0…1 across the mask).
struct Paint {
    let color: MaskColor
    let texture: MaskTexture
    let pattern: MaskPattern?
    /// Pattern tiles across the mask.
    let tiles: Double
    let offset: (Double, Double)

    func color(u: Double, v: Double) -> (Double, Double, Double) {
        let base = (Double(color.r) / 255, Double(color.g) / 255, Double(color.b) / 255)
        switch texture {
        case .plain:
            return base
        case .pattern:
            guard let p = pattern else { return base }
            let k = tiles * Double(p.width)
            let (r, g, b) = p.sample((u + offset.0) * k, (v + offset.1) * k)
            return (Double(r), Double(g), Double(b))
        case .stripes(let other):
            let phase = (v + offset.1) * 6 * tiles
            let w = 0.5 + 0.5 * sin(phase * 2 * .pi)
            let m = min(1, max(0, (w - 0.35) * 4))   // soft-edged stripes
            return (base.0 * (1 - m) + Double(other.r) / 255 * m,
                    base.1 * (1 - m) + Double(other.g) / 255 * m,
                    base.2 * (1 - m) + Double(other.b) / 255 * m)
        }
    }
}

/// Bilinear sample of premultiplied luminance and alpha at `(x, y)` in level pixels; 0 outside.
@inline(__always)
func sampleLevel(_ l: MaskTemplate.Level, _ x: Double, _ y: Double) -> (Float, Float) {
    let fx = x - 0.5, fy = y - 0.5
    let x0 = Int(floor(fx)), y0 = Int(floor(fy))
    if x0 < -1 || y0 < -1 || x0 >= l.width || y0 >= l.height { return (0, 0) }
    let tx = Float(fx - Double(x0)), ty = Float(fy - Double(y0))
    var lum: Float = 0, alpha: Float = 0
    for (dy, wy) in [(0, 1 - ty), (1, ty)] {
        let yy = y0 + dy
        if yy < 0 || yy >= l.height { continue }
        for (dx, wx) in [(0, 1 - tx), (1, tx)] {
            let xx = x0 + dx
            if xx < 0 || xx >= l.width { continue }
            let w = wx * wy
            lum += w * l.lum[yy * l.width + xx]
            alpha += w * l.alpha[yy * l.width + xx]
        }
    }
    return (lum, alpha)
}

@inline(__always)
func blend(_ image: inout RGBImage, x: Int, y: Int, rgb: (Double, Double, Double), shade: Double, opacity: Float) {
    let i = (y * image.width + x) * 3
    let a = Double(opacity)
    let src = [rgb.0, rgb.1, rgb.2]
    for c in 0..<3 {
        let m = min(255, max(0, src[c] * shade * 255))
        let v = Double(image.pixels[i + c]) * (1 - a) + m * a
        image.pixels[i + c] = UInt8(min(255, max(0, v.rounded())))
    }
}

/// Twice the signed area of a polygon.
func shoelace(_ p: [Vec2]) -> Double {
    var s = 0.0
    for i in 0..<p.count { s += p[i].cross(p[(i + 1) % p.count]) }
    return s / 2
}

/// A brightness factor for the mask from the face's skin (nose bridge, cheeks, chin), so a mask on a dim
/// photo is not glowing white: √(mean luminance / 0.6), clamped to 0.55…1.1.
func faceLight(_ image: RGBImage, _ face: FaceGeometry) -> Double {
    let probes = [face[29], face[2].lerp(face[31], 0.5), face[14].lerp(face[35], 0.5), face[8].lerp(face[57], 0.5)]
    var sum = 0.0, n = 0.0
    for p in probes {
        for dy in -1...1 {
            for dx in -1...1 {
                let x = Int(p.x.rounded()) + dx, y = Int(p.y.rounded()) + dy
                guard x >= 0, y >= 0, x < image.width, y < image.height else { continue }
                let px = image[x, y]
                sum += (0.299 * Double(px.r) + 0.587 * Double(px.g) + 0.114 * Double(px.b)) / 255
                n += 1
            }
        }
    }
    guard n > 0 else { return 1 }
    return min(1.1, max(0.55, (sum / n / 0.6).squareRoot()))
}
