import CLinear
import Foundation

/// The thin wrapper around LIBLINEAR's C API (Debian liblinear 2.3, `linear.h`).
///
/// LIBLINEAR keeps two pieces of global state: the print function (`set_print_string_function`) and libc's
/// `rand()`, which orders the dual coordinate descent. Every call into `train` therefore runs under one
/// process-wide lock, with printing silenced and `srand(seed)` set first, so training is thread-safe and
/// reproducible. (Other code that calls `rand()` concurrently cannot disturb a training run in progress
/// only if it, too, avoids libc `rand()`; Facet does not, but libzmq draws routing ids with it, so in a
/// process with live sockets two runs agree to the solver's tolerance rather than bit for bit.)
enum LibLinear {
    private static let lock = NSLock()

    /// Version number from the shared library (230 for 2.3.0).
    static var version: Int { Int(liblinear_version) }

    struct BinaryResult {
        var weights: [Double]
        var intercept: Double
    }

    /// Trains one binary problem. `positive[i]` says whether row i is the positive class. `rows` must already be
    /// normalised if the caller wants that. `cPositive`/`cNegative` are LIBLINEAR's `weighted_C` of each side.
    static func trainBinary(rows: [[Double]], dimension: Int, positive: [Bool], cPositive: Double, cNegative: Double,
                            options: LinearSVMOptions) throws -> BinaryResult {
        let l = rows.count
        let hasBias = options.bias != nil
        let perRow = dimension + (hasBias ? 1 : 0) + 1
        let nodes = UnsafeMutablePointer<feature_node>.allocate(capacity: l * perRow)
        defer { nodes.deallocate() }
        let xs = UnsafeMutablePointer<UnsafeMutablePointer<feature_node>?>.allocate(capacity: l)
        defer { xs.deallocate() }
        let ys = UnsafeMutablePointer<Double>.allocate(capacity: l)
        defer { ys.deallocate() }
        for i in 0..<l {
            let base = nodes + i * perRow
            var k = 0
            let row = rows[i]
            for j in 0..<dimension where row[j] != 0 {
                base[k] = feature_node(index: Int32(j + 1), value: row[j])
                k += 1
            }
            if let b = options.bias {
                base[k] = feature_node(index: Int32(dimension + 1), value: b)
                k += 1
            }
            base[k] = feature_node(index: -1, value: 0)
            xs[i] = base
            ys[i] = positive[i] ? 1 : -1
        }
        var prob = problem(l: Int32(l), n: Int32(dimension + (hasBias ? 1 : 0)), y: ys, x: xs,
                           bias: options.bias ?? -1)
        var weightLabel: [Int32] = [1, -1]
        var weight: [Double] = [cPositive / options.c, cNegative / options.c]
        let solver: Int32 = options.loss == .squaredHinge ? Int32(L2R_L2LOSS_SVC_DUAL) : Int32(L2R_L1LOSS_SVC_DUAL)

        return try weightLabel.withUnsafeMutableBufferPointer { wl in
            try weight.withUnsafeMutableBufferPointer { w in
                var param = parameter(solver_type: solver, eps: options.tolerance, C: options.c, nr_weight: 2,
                                      weight_label: wl.baseAddress, weight: w.baseAddress, p: 0.1, init_sol: nil)
                lock.lock()
                defer { lock.unlock() }
                set_print_string_function { _ in }
                if let msg = check_parameter(&prob, &param) {
                    throw ClassifyError.solverRejected(String(cString: msg))
                }
                srand(options.seed)
                guard let model = train(&prob, &param) else {
                    throw ClassifyError.solverRejected("train() returned no model")
                }
                var m: UnsafeMutablePointer<model>? = model
                defer { free_and_destroy_model(&m) }
                // Which of the model's label slots is +1? LIBLINEAR orders labels by first appearance
                // (and swaps -1/+1 so +1 comes first), but ask rather than assume.
                var labels = [Int32](repeating: 0, count: Int(get_nr_class(model)))
                get_labels(model, &labels)
                guard let slot = labels.firstIndex(of: 1) else {
                    throw ClassifyError.solverRejected("trained model has no +1 class")
                }
                var wv = [Double](repeating: 0, count: dimension)
                for j in 0..<dimension {
                    wv[j] = get_decfun_coef(model, Int32(j + 1), Int32(slot))
                }
                let b = hasBias ? get_decfun_bias(model, Int32(slot)) : 0
                return BinaryResult(weights: wv, intercept: b)
            }
        }
    }
}
