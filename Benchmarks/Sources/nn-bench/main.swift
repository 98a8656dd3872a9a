// nn-bench: Facet's ResNet embedder (aligned chips, batches of 1, 8, 32) and MMOD detector timings.
// Prints one line per measurement: `facet <what> threads=<t> batch=<b> ms_per_item=<m> items_per_s=<r>`.
import FacetFace
import FacetImaging
import FacetNN
import Foundation

func arg(_ name: String, _ def: String) -> String {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count { return a[i + 1] }
    return def
}

let models = arg("--models", ProcessInfo.processInfo.environment["FACET_MODELS"] ?? "models")
let chipDir = arg("--chips", "Tests/FacetFaceTests/Fixtures/nn/chips")
let imagePath = arg("--image", "Tests/FacetFaceTests/Fixtures/nn/images/lfw_bush.png")
let threads = Int(arg("--threads", "1")) ?? 1
let mode = arg("--mode", "blas")          // blas: OpenBLAS threads; workers: batches on parallel workers
let seconds = Double(arg("--seconds", "3")) ?? 3
let batches = arg("--batches", "1,8,32").split(separator: ",").compactMap { Int($0) }
let upsamples = arg("--upsamples", "0,1").split(separator: ",").compactMap { Int($0) }

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
/// CPU time of the whole process (all threads), to compare work done independently of other load on the machine.
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

do {
    let decoder = ImageDecoder()
    let files = try FileManager.default.contentsOfDirectory(atPath: chipDir).filter { $0.hasSuffix(".png") }.sorted()
    let chips = try files.map { try decoder.decodeFile(atPath: chipDir + "/" + $0) }
    guard !chips.isEmpty else { fatalError("no chips in \(chipDir)") }
    let resnet = try ResNetFaceDescriptor(modelPath: models + "/dlib_face_recognition_resnet_model_v1.dat")
    if mode == "workers" {
        BLASSetup.threads = 1
        resnet.workers = threads
    } else {
        BLASSetup.threads = threads
        resnet.workers = 1
    }
    print("# OpenBLAS core: \(BLASSetup.summary); OpenBLAS threads \(BLASSetup.threads); workers \(resnet.workers)")
    for b in batches {
        let batch = (0 ..< b).map { chips[$0 % chips.count] }
        resnet.batchSize = max(b, 1)  // one forward pass per batch (split between workers in workers mode)
        _ = try resnet.descriptors(for: batch)  // warm-up
        var times: [Double] = [], cpu: [Double] = []
        let start = now()
        while now() - start < seconds || times.count < 3 {
            let t0 = now(), c0 = cpuNow()
            _ = try resnet.descriptors(for: batch)
            times.append((now() - t0) / Double(b)); cpu.append((cpuNow() - c0) / Double(b))
        }
        let m = median(times)
        print(String(format: "facet embed mode=%@ threads=%d batch=%d ms_per_item=%.2f cpu_ms_per_item=%.2f items_per_s=%.1f runs=%d",
                     mode, threads, b, m * 1000, median(cpu) * 1000, 1 / m, times.count))
    }
    if upsamples.isEmpty { exit(0) }
    let detector = try MMODFaceDetector(modelPath: models + "/mmod_human_face_detector.dat")
    let image = try decoder.decodeFile(atPath: imagePath)
    for up in upsamples {
        _ = try detector.detect(image, upsample: up)
        var times: [Double] = [], cpu: [Double] = []
        let start = now()
        while now() - start < seconds || times.count < 3 {
            let t0 = now(), c0 = cpuNow()
            _ = try detector.detect(image, upsample: up)
            times.append(now() - t0); cpu.append(cpuNow() - c0)
        }
        let m = median(times)
        print(String(format: "facet mmod mode=%@ threads=%d upsample=%d image=%dx%d ms_per_item=%.1f cpu_ms_per_item=%.1f items_per_s=%.2f runs=%d",
                     mode, threads, up, image.width, image.height, m * 1000, median(cpu) * 1000, 1 / m, times.count))
    }
} catch {
    FileHandle.standardError.write("nn-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}
