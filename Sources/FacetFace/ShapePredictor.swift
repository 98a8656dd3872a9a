import Foundation
import FacetImaging

/// dlib's `shape_predictor` (Kazemi & Sullivan's ensemble of regression trees), read from dlib's `.dat` files
/// (`shape_predictor_5_face_landmarks.dat`, `shape_predictor_68_face_landmarks.dat`) and evaluated exactly as
/// `dlib/image_processing/shape_predictor.h` does:
/// - the shape lives in the box-normalised frame (box top-left = (0,0), bottom-right = (1,1));
/// - each cascade samples its feature pixels through the similarity transform from the initial (mean) shape to
///   the current shape (Float), maps them into the image (Double), rounds to the nearest integer pixel, and
///   reads dlib's gray value `(r + g + b) / 3` (0 outside the image);
/// - each tree goes left when `f[i1] - f[i2] > threshold` and adds its leaf to the shape;
/// - the final points are mapped into the image and rounded to integers.
public final class ShapePredictor: @unchecked Sendable {
    // Immutable after init; safe to share across threads.
    public let numParts: Int
    public let modelPath: String
    private let initialShape: [Float]
    private let cascades: [Cascade]

    struct Cascade {
        var anchor: [Int]          // per feature pixel: index of the shape point it hangs on
        var deltaX: [Float]        // offset from that point in the initial-shape frame
        var deltaY: [Float]
        var treeDepthSplits: Int   // splits per tree (2^depth - 1)
        var split1: [Int32]        // trees * splits
        var split2: [Int32]
        var thresholds: [Float]
        var leaves: [Float]        // trees * (splits + 1) * (2 * numParts)
        var treeCount: Int
    }

    /// Loads a dlib shape predictor file.
    public convenience init(modelPath: String) throws(FaceModelError) {
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw FaceModelError(.missingModel, path: modelPath, reason: "shape predictor model not found (run scripts/setup.sh)")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: modelPath)) } catch {
            throw FaceModelError(.missingModel, path: modelPath, reason: "cannot read model file: \(error.localizedDescription)")
        }
        try self.init(serialized: [UInt8](data), path: modelPath)
    }

    init(serialized: [UInt8], path: String) throws(FaceModelError) {
        modelPath = path
        var r = DlibStreamReader(serialized)
        func fail(_ f: DlibStreamReader.Failure) -> FaceModelError {
            FaceModelError(.invalidModel, path: path, reason: "not a dlib shape_predictor file: \(f.reason) at byte \(f.offset)")
        }
        do throws(DlibStreamReader.Failure) {
            let version = try r.readInt()
            guard version == 1 else {
                throw DlibStreamReader.Failure(reason: "unexpected shape_predictor version \(version)", offset: 0)
            }
            let initial = try r.readFloatColumn(limit: 10_000)
            guard initial.count >= 2, initial.count % 2 == 0 else {
                throw DlibStreamReader.Failure(reason: "initial shape has \(initial.count) values", offset: r.offset)
            }
            let dims = initial.count
            // forests: vector<vector<regression_tree>>
            let cascadeCount = try r.readCount(limit: 1000)
            var splits1 = [[Int32]](), splits2 = [[Int32]](), thresholds = [[Float]](), leaves = [[Float]]()
            var splitsPerTree = [Int](), treeCounts = [Int]()
            for _ in 0..<cascadeCount {
                let trees = try r.readCount(limit: 100_000)
                var s1 = [Int32](), s2 = [Int32](), th = [Float](), lv = [Float]()
                var perTree = -1
                for _ in 0..<trees {
                    let nSplits = try r.readCount(limit: 1 << 16)
                    if perTree < 0 { perTree = nSplits }
                    guard nSplits == perTree else {
                        throw DlibStreamReader.Failure(reason: "trees of unequal depth", offset: r.offset)
                    }
                    for _ in 0..<nSplits {
                        s1.append(Int32(try r.readCount(limit: Int(Int32.max))))
                        s2.append(Int32(try r.readCount(limit: Int(Int32.max))))
                        th.append(try r.readFloat())
                    }
                    let nLeaves = try r.readCount(limit: 1 << 17)
                    guard nLeaves == nSplits + 1 else {
                        throw DlibStreamReader.Failure(reason: "tree has \(nLeaves) leaves for \(nSplits) splits", offset: r.offset)
                    }
                    for _ in 0..<nLeaves {
                        let leaf = try r.readFloatColumn(limit: dims)
                        guard leaf.count == dims else {
                            throw DlibStreamReader.Failure(reason: "leaf has \(leaf.count) values, shape has \(dims)", offset: r.offset)
                        }
                        lv.append(contentsOf: leaf)
                    }
                }
                splits1.append(s1); splits2.append(s2); thresholds.append(th); leaves.append(lv)
                splitsPerTree.append(max(0, perTree)); treeCounts.append(trees)
            }
            // anchor_idx: vector<vector<unsigned long>>
            let anchorCascades = try r.readCount(limit: 1000)
            guard anchorCascades == cascadeCount else {
                throw DlibStreamReader.Failure(reason: "\(anchorCascades) anchor sets for \(cascadeCount) cascades", offset: r.offset)
            }
            var anchors = [[Int]]()
            for _ in 0..<anchorCascades {
                let n = try r.readCount(limit: 1 << 20)
                var a = [Int](); a.reserveCapacity(n)
                for _ in 0..<n { a.append(try r.readCount(limit: dims / 2 - 1)) }
                anchors.append(a)
            }
            // deltas: vector<vector<vector<float,2>>>
            let deltaCascades = try r.readCount(limit: 1000)
            guard deltaCascades == cascadeCount else {
                throw DlibStreamReader.Failure(reason: "\(deltaCascades) delta sets for \(cascadeCount) cascades", offset: r.offset)
            }
            var built = [Cascade]()
            for c in 0..<deltaCascades {
                let n = try r.readCount(limit: 1 << 20)
                guard n == anchors[c].count else {
                    throw DlibStreamReader.Failure(reason: "\(n) deltas for \(anchors[c].count) anchors", offset: r.offset)
                }
                var dx = [Float](), dy = [Float]()
                for _ in 0..<n { dx.append(try r.readFloat()); dy.append(try r.readFloat()) }
                guard splits1[c].allSatisfy({ Int($0) < n }), splits2[c].allSatisfy({ Int($0) < n }) else {
                    throw DlibStreamReader.Failure(reason: "split refers to a feature pixel that does not exist", offset: r.offset)
                }
                built.append(Cascade(anchor: anchors[c], deltaX: dx, deltaY: dy, treeDepthSplits: splitsPerTree[c],
                                     split1: splits1[c], split2: splits2[c], thresholds: thresholds[c],
                                     leaves: leaves[c], treeCount: treeCounts[c]))
            }
            initialShape = initial
            cascades = built
            numParts = dims / 2
        } catch {
            throw fail(error)
        }
    }

    /// The landmarks of the face in `box` (dlib inclusive rectangle), in image pixels, rounded as dlib rounds.
    public func landmarks(in image: RGBImage, box: FaceRect) -> [LandmarkPoint] {
        let dims = initialShape.count
        var shape = initialShape
        // unnormalizing_tform(rect): (0,0)->tl, (1,0)->tr, (1,1)->br.
        let sx = Double(box.right - box.left), sy = Double(box.bottom - box.top)
        let ox = Double(box.left), oy = Double(box.top)
        let w = image.width, h = image.height
        var features = [Float]()

        image.pixels.withUnsafeBufferPointer { px in
            for cascade in cascades {
                let t = ShapePredictor.similarity(from: initialShape, to: shape)
                let n = cascade.anchor.count
                if features.count != n { features = [Float](repeating: 0, count: n) }
                for i in 0..<n {
                    let a = cascade.anchor[i]
                    // tform * delta + location(current_shape, anchor), all Float.
                    let fx = (t.m00 * cascade.deltaX[i] + t.m01 * cascade.deltaY[i]) + shape[2 * a]
                    let fy = (t.m10 * cascade.deltaX[i] + t.m11 * cascade.deltaY[i]) + shape[2 * a + 1]
                    let ix = (sx * Double(fx) + 0 * Double(fy)) + ox
                    let iy = (0 * Double(fx) + sy * Double(fy)) + oy
                    let rx = (ix + 0.5).rounded(.down), ry = (iy + 0.5).rounded(.down)
                    if rx >= 0, ry >= 0, rx < Double(w), ry < Double(h) {
                        let p = (Int(ry) * w + Int(rx)) * 3
                        features[i] = Float((UInt32(px[p]) + UInt32(px[p + 1]) + UInt32(px[p + 2])) / 3)
                    } else {
                        features[i] = 0
                    }
                }
                let splits = cascade.treeDepthSplits
                let leafStride = dims
                cascade.leaves.withUnsafeBufferPointer { leaves in
                    for tree in 0..<cascade.treeCount {
                        var node = 0
                        let base = tree * splits
                        while node < splits {
                            let s = base + node
                            if features[Int(cascade.split1[s])] - features[Int(cascade.split2[s])] > cascade.thresholds[s] {
                                node = 2 * node + 1
                            } else {
                                node = 2 * node + 2
                            }
                        }
                        let leaf = (tree * (splits + 1) + (node - splits)) * leafStride
                        for k in 0..<dims { shape[k] += leaves[leaf + k] }
                    }
                }
            }
        }
        var points = [LandmarkPoint]()
        points.reserveCapacity(numParts)
        for i in 0..<numParts {
            let x = (sx * Double(shape[2 * i]) + 0 * Double(shape[2 * i + 1])) + ox
            let y = (0 * Double(shape[2 * i]) + sy * Double(shape[2 * i + 1])) + oy
            points.append(LandmarkPoint(x: (x + 0.5).rounded(.down), y: (y + 0.5).rounded(.down)))
        }
        return points
    }

    struct Similarity { var m00: Float, m01: Float, m10: Float, m11: Float }

    /// The scale+rotation part of dlib's `find_similarity_transform(from, to)` (Umeyama), in Double, cast to Float
    /// as `matrix_cast<float>` does. For 2-D points the SVD solution reduces to `c R = [[p, -q], [q, p]] / sigma_from`.
    static func similarity(from: [Float], to: [Float]) -> Similarity {
        let n = from.count / 2
        var mfx = 0.0, mfy = 0.0, mtx = 0.0, mty = 0.0
        for i in 0..<n {
            mfx += Double(from[2 * i]); mfy += Double(from[2 * i + 1])
            mtx += Double(to[2 * i]); mty += Double(to[2 * i + 1])
        }
        let dn = Double(n)
        mfx /= dn; mfy /= dn; mtx /= dn; mty /= dn
        var sigma = 0.0, p = 0.0, q = 0.0
        for i in 0..<n {
            let fx = Double(from[2 * i]) - mfx, fy = Double(from[2 * i + 1]) - mfy
            let tx = Double(to[2 * i]) - mtx, ty = Double(to[2 * i + 1]) - mty
            sigma += fx * fx + fy * fy
            p += tx * fx + ty * fy
            q += ty * fx - tx * fy
        }
        sigma /= dn; p /= dn; q /= dn
        if sigma == 0 { return Similarity(m00: 1, m01: 0, m10: 0, m11: 1) }
        let a = p / sigma, b = q / sigma
        return Similarity(m00: Float(a), m01: Float(-b), m10: Float(b), m11: Float(a))
    }
}
