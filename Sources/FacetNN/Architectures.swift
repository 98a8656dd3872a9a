/// The dlib network types Facet reads, written out as dlib's templates define them.
public enum DlibArchitectures {
    /// `dlib_face_recognition_resnet_model_v1.dat` (dlib's `anet_type`, tools/python/src/face_recognition.cpp):
    ///
    ///     loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
    ///         max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>
    ///
    /// with `ares<N> = relu<add_prev1<block<N,1,tag1<SUBNET>>>>`,
    /// `ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>` and
    /// `block<N,stride> = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>`.
    public static var resNetFaceV1: NetworkSpec {
        var l: [LayerSpec] = [.con(filters: 32, nr: 7, nc: 7, strideY: 2, strideX: 2), .affine, .relu,
                              .maxPool(nr: 3, nc: 3, strideY: 2, strideX: 2)]
        func block(_ n: Int, _ stride: Int) -> [LayerSpec] {
            [.con(filters: n, nr: 3, nc: 3, strideY: stride, strideX: stride), .affine, .relu,
             .con(filters: n, nr: 3, nc: 3, strideY: 1, strideX: 1), .affine]
        }
        func ares(_ n: Int) -> [LayerSpec] { [.tag(1)] + block(n, 1) + [.addPrev(tag: 1), .relu] }
        func aresDown(_ n: Int) -> [LayerSpec] {
            [.tag(1)] + block(n, 2) + [.tag(2), .skip(1), .avgPool(nr: 2, nc: 2, strideY: 2, strideX: 2), .addPrev(tag: 2), .relu]
        }
        l += ares(32) + ares(32) + ares(32)                          // alevel4
        l += aresDown(64) + ares(64) + ares(64) + ares(64)           // alevel3
        l += aresDown(128) + ares(128) + ares(128)                   // alevel2
        l += aresDown(256) + ares(256) + ares(256)                   // alevel1
        l += aresDown(256)                                           // alevel0
        l += [.avgPool(nr: 0, nc: 0, strideY: 1, strideX: 1), .fc(outputs: 128, bias: false)]
        return NetworkSpec(input: .rgbImageSized(nr: 150, nc: 150), layers: l, loss: .metric)
    }

    /// `mmod_human_face_detector.dat` (tools/python/src/cnn_face_detector.cpp):
    ///
    ///     loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>
    ///
    /// with `downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16,SUBNET>>>>>>>>>`
    /// (`con5d<N> = con<N,5,5,2,2>`) and `rcon5<N> = relu<affine<con<45,5,5,1,1>>>`.
    public static var mmodFaceDetector: NetworkSpec {
        var l: [LayerSpec] = []
        for n in [16, 32, 32] { l += [.con(filters: n, nr: 5, nc: 5, strideY: 2, strideX: 2), .affine, .relu] }
        for _ in 0 ..< 3 { l += [.con(filters: 45, nr: 5, nc: 5, strideY: 1, strideX: 1), .affine, .relu] }
        l += [.con(filters: 1, nr: 9, nc: 9, strideY: 1, strideX: 1)]
        return NetworkSpec(input: .rgbImagePyramid, layers: l, loss: .mmod)
    }
}
