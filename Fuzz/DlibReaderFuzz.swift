// libFuzzer entry point for FacetNN's dlib network reader (DlibReader + DlibNetwork with the MMOD detector's
// architecture). Built by Fuzz/libfuzzer.sh together with FacetNN's sources, coverage-guided, with ASan.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDlibReader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? DlibNetwork(bytes: bytes, spec: DlibArchitectures.mmodFaceDetector)
    _ = try? DlibNetwork(bytes: bytes, spec: DlibArchitectures.resNetFaceV1)
    return 0
}
