// nn-bench: Facet's ResNet embedder (aligned chips, batches of 1, 8, 32), MMOD detector and full pipeline timings.
// Prints one line per measurement:
//   facet <what> mode=<m> threads=<t> <detail> ms_per_item=<median wall> min_ms_per_item=<best wall>
//         cpu_ms_per_item=<median process CPU> items_per_s=<1/median> runs=<n>
// Modes: blas (one forward pass per batch, OpenBLAS with --threads threads), workers (OpenBLAS 1 thread, the batch
// split between --threads workers; the pipeline runs images on --threads workers), split (OpenBLAS 1 thread, every
// convolution's tiles split between --threads threads). --engine reference runs DlibNetwork.forward (the plain
// NCHW im2col path) instead of the fused executor.
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
let pipelineDir = arg("--pipeline", "")
let threads = Int(arg("--threads", "1")) ?? 1
let mode = arg("--mode", "blas")
let engine = arg("--engine", "fused")
let seconds = Double(arg("--seconds", "3")) ?? 3
let what = Set(arg("--what", "embed,mmod").split(separator: ",").map(String.init))
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

func measure(_ label: String, _ detail: String, per: Int, _ body: () throws -> Void) rethrows {
    try body()  // warm-up (also builds lazily transformed filters)
    var times: [Double] = [], cpu: [Double] = []
    let start = now()
    while now() - start < seconds || times.count < 3 {
        let t0 = now(), c0 = cpuNow()
        try body()
        times.append((now() - t0) / Double(per)); cpu.append((cpuNow() - c0) / Double(per))
    }
    let m = median(times)
    print(String(format: "facet %@ mode=%@ threads=%d %@ ms_per_item=%.2f min_ms_per_item=%.2f cpu_ms_per_item=%.2f items_per_s=%.2f runs=%d",
                 label, engine == "fused" ? mode : "\(mode)-reference", threads, detail, m * 1000, times.min()! * 1000,
                 median(cpu) * 1000, 1 / m, times.count))
    fflush(stdout)
}

do {
    let decoder = ImageDecoder()
    BLASSetup.threads = mode == "blas" ? threads : 1
    print("# OpenBLAS core: \(BLASSetup.summary); OpenBLAS threads \(BLASSetup.threads); mode \(mode); engine \(engine)")
    let resnet = try ResNetFaceDescriptor(modelPath: models + "/dlib_face_recognition_resnet_model_v1.dat")
    resnet.useFusedExecutor = engine == "fused"
    resnet.workers = mode == "workers" ? threads : 1
    resnet.fused.threads = mode == "split" ? threads : 1
    if what.contains("embed") {
        let files = try FileManager.default.contentsOfDirectory(atPath: chipDir).filter { $0.hasSuffix(".png") }.sorted()
        let chips = try files.map { try decoder.decodeFile(atPath: chipDir + "/" + $0) }
        guard !chips.isEmpty else { fatalError("no chips in \(chipDir)") }
        for b in batches {
            let batch = (0 ..< b).map { chips[$0 % chips.count] }
            resnet.batchSize = max(b, 1)  // one forward pass per batch (split between workers in workers mode)
            try measure("embed", "batch=\(b)", per: b) { _ = try resnet.descriptors(for: batch) }
        }
    }
    if what.contains("mmod") {
        let detector = try MMODFaceDetector(modelPath: models + "/mmod_human_face_detector.dat")
        let image = try decoder.decodeFile(atPath: imagePath)
        for up in upsamples {
            try measure("mmod", "upsample=\(up) image=\(image.width)x\(image.height)", per: 1) {
                _ = try detector.detect(image, upsample: up)
            }
        }
    }
    if what.contains("pipeline"), !pipelineDir.isEmpty {
        // decode JPEG → MMOD (upsample 0) → 5-point landmarks → chip → descriptors, per image; in workers mode the
        // images are shared between `threads` workers (what a serving node does with concurrent requests).
        let embedder = DlibFaceEmbedder(
            detector: try MMODFaceDetector(modelPath: models + "/mmod_human_face_detector.dat"),
            predictor: try ShapePredictor(modelPath: models + "/shape_predictor_5_face_landmarks.dat"),
            descriptor: resnet)
        resnet.workers = 1
        let files = try FileManager.default.contentsOfDirectory(atPath: pipelineDir).filter { $0.hasSuffix(".jpg") }.sorted()
            .map { pipelineDir + "/" + $0 }
        guard !files.isEmpty else { fatalError("no .jpg in \(pipelineDir)") }
        let faces = UnsafeMutableBufferPointer<Int>.allocate(capacity: files.count)
        faces.initialize(repeating: 0)
        var failure: Error?
        let lock = NSLock()
        let one = { (i: Int) in
            do {
                let image = try decoder.decodeFile(atPath: files[i])
                faces[i] = try embedder.analyze(image, upsample: 0, jitter: 0).count
            } catch { lock.withLock { failure = error } }
        }
        try measure("pipeline", "upsample=0 images=\(files.count)", per: files.count) {
            if mode == "workers" && threads > 1 {
                DispatchQueue.concurrentPerform(iterations: files.count, execute: one)
            } else {
                for i in files.indices { one(i) }
            }
            if let e = failure { throw e }
        }
        print("# pipeline faces found: \(faces.reduce(0, +)) in \(files.count) images")
    }
} catch {
    FileHandle.standardError.write("nn-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}
