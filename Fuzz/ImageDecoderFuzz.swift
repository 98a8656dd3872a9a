// libFuzzer entry point for FacetImaging's decoders (JPEG via libjpeg-turbo, PNG via libpng, format sniffing,
// EXIF orientation). Built by Fuzz/libfuzzer.sh together with FacetImaging's sources, coverage-guided, with ASan.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let decoder = ImageDecoder(limits: ImageDecodingLimits(maxPixels: 4_000_000, maxBytes: 1 << 20))
    do {
        let image = try decoder.decode(bytes, source: "libfuzzer")
        precondition(image.pixels.count == image.width * image.height * 3, "pixel buffer does not match the size")
    } catch {
        _ = error.code   // typed ImageDecodingError: fine
    }
    return 0
}
