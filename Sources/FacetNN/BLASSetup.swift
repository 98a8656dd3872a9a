import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Picks OpenBLAS's kernels once per process, before the first GEMM.
///
/// Debian 12's OpenBLAS 0.3.21 (a DYNAMIC_ARCH build) does not recognise recent AVX-512 CPUs such as AMD Zen 4
/// and falls back to its old "Prescott" SSE kernels, about 2× slower for our GEMMs. OpenBLAS reads
/// `OPENBLAS_CORETYPE` only when the library loads, which is before any Swift code runs; but it exports
/// `gotoblas_dynamic_quit`/`gotoblas_dynamic_init`, which re-run its core selection. So, when the user has not
/// chosen a core type and OpenBLAS reports "Prescott" on a CPU that has AVX-512 (F, BW, DQ, VL) or AVX2+FMA,
/// Facet sets `OPENBLAS_CORETYPE` to SkylakeX or Haswell and re-initialises the kernel table. The result is the
/// same as starting the process with `OPENBLAS_CORETYPE=SkylakeX`, which is how the dlib reference is run in the
/// benchmark. `FACET_BLAS_CORETYPE` overrides the choice (`keep` leaves OpenBLAS alone).
public enum BLASSetup {
    /// What was done, for logs and benchmarks: e.g. "Prescott -> SkylakeX".
    public static var summary: String { state.summary }

    /// The OpenBLAS core in use.
    public static var coreName: String {
        _ = state
        return currentCoreName() ?? "unknown"
    }

    public static func ensureConfigured() { _ = state }

    /// OpenBLAS's thread count (process-wide).
    public static var threads: Int {
        get { _ = state; return Int(openblas_get_num_threads()) }
        set { _ = state; openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    private struct State { let summary: String }

    private static let state: State = configure()

    private typealias VoidFn = @convention(c) () -> Void
    private typealias NameFn = @convention(c) () -> UnsafeMutablePointer<CChar>?

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        return dlsym(handle, name)
    }

    private static func currentCoreName() -> String? {
        guard let p = symbol("openblas_get_corename") else { return nil }
        let fn = unsafeBitCast(p, to: NameFn.self)
        guard let s = fn() else { return nil }
        return String(cString: s)
    }

    private static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    private static func configure() -> State {
        let env = ProcessInfo.processInfo.environment
        let before = currentCoreName() ?? "unknown"
        if env["OPENBLAS_CORETYPE"] != nil {
            return State(summary: "\(before) (OPENBLAS_CORETYPE set by the environment)")
        }
        var target: String?
        if let requested = env["FACET_BLAS_CORETYPE"] {
            if requested.lowercased() == "keep" { return State(summary: "\(before) (kept: FACET_BLAS_CORETYPE=keep)") }
            target = requested
        } else if before.lowercased() == "prescott" {
            let flags = cpuFlags()
            if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) {
                target = "SkylakeX"
            } else if ["avx2", "fma"].allSatisfy(flags.contains) {
                target = "Haswell"
            }
        }
        guard let core = target,
              let quit = symbol("gotoblas_dynamic_quit"), let initFn = symbol("gotoblas_dynamic_init") else {
            return State(summary: before)
        }
        setenv("OPENBLAS_CORETYPE", core, 1)
        unsafeBitCast(quit, to: VoidFn.self)()
        unsafeBitCast(initFn, to: VoidFn.self)()
        unsetenv("OPENBLAS_CORETYPE")
        let after = currentCoreName() ?? "unknown"
        return State(summary: "\(before) -> \(after)")
    }
}
