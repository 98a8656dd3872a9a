import FacetCluster
import FacetMasking
import Foundation
import Testing

@Suite("Decision thresholds per comparison type")
struct DecisionThresholdsTests {
    /// By default the coordinator decides with the bundled per-type thresholds: each comparison type gets its own
    /// calibrated distance, read from the shipped file (not a constant in the code).
    @Test func bundledPerTypeThresholdsAreTheDefault() throws {
        let d = try DecisionThresholds(configuration: NodeConfiguration())
        let table = try ComparisonThresholds.bundled()
        guard case .perType(let loaded) = d.source else { Issue.record("not per type: \(d.source)"); return }
        #expect(loaded == table)
        #expect(table.targetFMR == 1e-3)
        for kind in ComparisonKind.allCases {
            let t = table.maxDistance[kind.rawValue]
            #expect(t != nil && t! > 0.2 && t! < 0.6, "\(kind): \(String(describing: t))")
        }
        #expect(Double(d.maxDistance(probeMasked: false, referenceMasked: false)) == Double(Float(table.maxDistance(for: .unmaskedUnmasked))))
        // The order of probe and reference does not matter; masked–unmasked has its own threshold.
        #expect(d.maxDistance(probeMasked: true, referenceMasked: false) == d.maxDistance(probeMasked: false, referenceMasked: true))
        #expect(Double(d.maxDistance(probeMasked: true, referenceMasked: false)) == Double(Float(table.maxDistance(for: .maskedUnmasked))))
        #expect(Double(d.maxDistance(probeMasked: true, referenceMasked: true)) == Double(Float(table.maxDistance(for: .maskedMasked))))
        #expect(d.maxDistance(probeMasked: true, referenceMasked: false) != d.maxDistance(probeMasked: false, referenceMasked: false))
        #expect(d.summary.hasPrefix("per-type (FMR 0.001"))
    }

    /// An explicit `verifyThreshold` is one flat threshold for every type; a thresholds file is read as given; a file
    /// that cannot be read stops the coordinator from starting instead of deciding with something else.
    @Test func flatOverrideFileAndBadFile() throws {
        var c = NodeConfiguration()
        c.verifyThreshold = 0.5
        let flat = try DecisionThresholds(configuration: c)
        #expect(flat.source == .flat(0.5))
        #expect(flat.maxDistance(probeMasked: true, referenceMasked: true) == 0.5)
        #expect(flat.maxDistance(probeMasked: false, referenceMasked: false) == 0.5)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facet-thresholds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("t.json")
        let table = ComparisonThresholds(embedding: "test", targetFMR: 1e-4,
                                         maxDistance: [.unmaskedUnmasked: 0.30, .maskedUnmasked: 0.33, .maskedMasked: 0.31])
        try table.write(to: file)
        var f = NodeConfiguration()
        f.comparisonThresholds = file.path
        let fromFile = try DecisionThresholds(configuration: f)
        #expect(fromFile.maxDistance(probeMasked: false, referenceMasked: true) == Float(0.33))
        #expect(fromFile.maxDistance(probeMasked: true, referenceMasked: true) == Float(0.31))

        var bad = NodeConfiguration()
        bad.comparisonThresholds = dir.appendingPathComponent("missing.json").path
        #expect(throws: ClusterError.self) { try DecisionThresholds(configuration: bad) }
        var zero = NodeConfiguration()
        zero.verifyThreshold = 0
        #expect(throws: ClusterError.self) { try DecisionThresholds(configuration: zero) }
    }

    /// `periocularFusion`: the bundled file carries thresholds calibrated on fused distances, used for fused
    /// comparisons only; a flat `verifyThreshold` still wins; a fusion file without thresholds, or unreadable, stops
    /// the coordinator.
    @Test func periocularFusionThresholds() throws {
        #expect(try DecisionThresholds(configuration: NodeConfiguration()).maxFusedDistance(probeMasked: true, referenceMasked: false) == nil)
        var c = NodeConfiguration()
        c.periocularFusion = "bundled"
        let d = try DecisionThresholds(configuration: c)
        let fusion = try PeriocularFusion.bundled()
        let table = try #require(fusion.thresholds)
        #expect(d.fusion == fusion && table.targetFMR == 1e-3)
        for kind in ComparisonKind.allCases {
            let t = table.maxDistance[kind.rawValue]
            #expect(t != nil && t! > 0.2 && t! < 0.6, "\(kind): \(String(describing: t))")
        }
        #expect(d.maxFusedDistance(probeMasked: true, referenceMasked: false) == Float(table.maxDistance(for: .maskedUnmasked)))
        #expect(d.maxFusedDistance(probeMasked: false, referenceMasked: true) == Float(table.maxDistance(for: .maskedUnmasked)))
        #expect(d.maxFusedDistance(probeMasked: true, referenceMasked: true) == Float(table.maxDistance(for: .maskedMasked)))
        // Unfused decisions keep the ordinary per-type table.
        #expect(d.maxDistance(probeMasked: true, referenceMasked: false) == Float(try ComparisonThresholds.bundled().maxDistance(for: .maskedUnmasked)))
        #expect(d.summary.contains("periocular-fused masked-unmasked"))
        c.verifyThreshold = 0.45
        #expect(try DecisionThresholds(configuration: c).maxFusedDistance(probeMasked: true, referenceMasked: true) == 0.45)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("facet-fusion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var uncalibrated = fusion
        uncalibrated.thresholds = nil
        try uncalibrated.write(to: dir.appendingPathComponent("p.json"))
        var u = NodeConfiguration()
        u.periocularFusion = dir.appendingPathComponent("p.json").path
        #expect(throws: ClusterError.self) { try DecisionThresholds(configuration: u) }
        u.periocularFusion = dir.appendingPathComponent("missing.json").path
        #expect(throws: ClusterError.self) { try DecisionThresholds(configuration: u) }
    }
}
