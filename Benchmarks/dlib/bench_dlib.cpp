// dlib C++ reference timings (Debian libdlib-dev 19.24, OpenBLAS through the libblas alternative).
// Same measurements as Benchmarks/Sources/nn-bench: ResNet descriptors of aligned chips in batches of
// 1, 8 and 32, MMOD detection (with Python's pyramid_up upsampling) on one image, and the full pipeline
// (decode JPEG, MMOD at upsample 0, 5-point landmarks, 150x150 chip, descriptors) over a folder of images.
// Build: g++ -O3 -std=c++17 bench_dlib.cpp -o bench_dlib -ldlib -lopenblas -lpng -ljpeg
// Usage: bench_dlib MODELS CHIPDIR IMAGE.png SECONDS WHAT [PIPELINE_DIR]   (WHAT: comma list of embed,mmod,pipeline)
// Threads: OPENBLAS_NUM_THREADS (dlib's CPU convolution is im2col + BLAS GEMM).
// Each line reports the median and the minimum (best-of-N) wall time and the median process CPU time per item.
#include <dlib/dnn.h>
#include <dlib/revision.h>
#include <dlib/image_io.h>
#include <dlib/image_transforms.h>
#include <dlib/image_processing.h>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <dirent.h>
#include <algorithm>
#include <string>
#include <vector>

using namespace dlib;

template <template <int, template <typename> class, int, typename> class block, int N, template <typename> class BN, typename SUBNET>
using residual = add_prev1<block<N, BN, 1, tag1<SUBNET>>>;
template <template <int, template <typename> class, int, typename> class block, int N, template <typename> class BN, typename SUBNET>
using residual_down = add_prev2<avg_pool<2, 2, 2, 2, skip1<tag2<block<N, BN, 2, tag1<SUBNET>>>>>>;
template <int N, template <typename> class BN, int stride, typename SUBNET>
using block = BN<con<N, 3, 3, 1, 1, relu<BN<con<N, 3, 3, stride, stride, SUBNET>>>>>;
template <int N, typename SUBNET> using ares = relu<residual<block, N, affine, SUBNET>>;
template <int N, typename SUBNET> using ares_down = relu<residual_down<block, N, affine, SUBNET>>;
template <typename SUBNET> using alevel0 = ares_down<256, SUBNET>;
template <typename SUBNET> using alevel1 = ares<256, ares<256, ares_down<256, SUBNET>>>;
template <typename SUBNET> using alevel2 = ares<128, ares<128, ares_down<128, SUBNET>>>;
template <typename SUBNET> using alevel3 = ares<64, ares<64, ares<64, ares_down<64, SUBNET>>>>;
template <typename SUBNET> using alevel4 = ares<32, ares<32, ares<32, SUBNET>>>;
using anet_type = loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
    max_pool<3, 3, 2, 2, relu<affine<con<32, 7, 7, 2, 2, input_rgb_image_sized<150>>>>>>>>>>>>>;

template <long num_filters, typename SUBNET> using con5d = con<num_filters, 5, 5, 2, 2, SUBNET>;
template <long num_filters, typename SUBNET> using con5 = con<num_filters, 5, 5, 1, 1, SUBNET>;
template <typename SUBNET> using downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, SUBNET>>>>>>>>>;
template <typename SUBNET> using rcon5 = relu<affine<con5<45, SUBNET>>>;
using mmod_net = loss_mmod<con<1, 9, 9, 1, 1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
static double cpu_now() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double median(std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; }
static double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// Runs fn (which handles `per` items) repeatedly for at least `seconds` and 3 runs; prints one result line.
template <typename F>
static void measure(const char* label, const std::string& what, double seconds, int per, F fn) {
    fn();
    std::vector<double> times, cpu;
    double start = now();
    while (now() - start < seconds || times.size() < 3) {
        double t0 = now(), c0 = cpu_now();
        fn();
        times.push_back((now() - t0) / per);
        cpu.push_back((cpu_now() - c0) / per);
    }
    const char* th = std::getenv("OPENBLAS_NUM_THREADS");
    std::printf("dlibcpp %s threads=%s %s ms_per_item=%.2f min_ms_per_item=%.2f cpu_ms_per_item=%.2f items_per_s=%.2f runs=%zu\n",
                label, th ? th : "?", what.c_str(), median(times) * 1000, minimum(times) * 1000, median(cpu) * 1000,
                1 / median(times), times.size());
    std::fflush(stdout);
}

int main(int argc, char** argv) {
    if (argc < 6) { std::fprintf(stderr, "usage: bench_dlib MODELS CHIPDIR IMAGE.png SECONDS WHAT [PIPELINE_DIR]\n"); return 2; }
    std::string models = argv[1], chipdir = argv[2], image = argv[3], what = argv[5];
    double seconds = std::atof(argv[4]);
    auto wants = [&](const char* w) { return ("," + what + ",").find("," + std::string(w) + ",") != std::string::npos; };
    const char* th = std::getenv("OPENBLAS_NUM_THREADS");
    const char* core = std::getenv("OPENBLAS_CORETYPE");
    std::printf("# dlib %d.%d, OPENBLAS_NUM_THREADS=%s OPENBLAS_CORETYPE=%s\n", DLIB_MAJOR_VERSION, DLIB_MINOR_VERSION,
                th ? th : "(unset)", core ? core : "(unset)");
    anet_type net;
    deserialize(models + "/dlib_face_recognition_resnet_model_v1.dat") >> net;
    auto list = [](const std::string& dir, const std::string& suffix) {
        std::vector<std::string> names;
        if (DIR* d = opendir(dir.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n.size() > suffix.size() && n.substr(n.size() - suffix.size()) == suffix) names.push_back(dir + "/" + n);
            }
            closedir(d);
        }
        std::sort(names.begin(), names.end());
        return names;
    };
    if (wants("embed")) {
        std::vector<matrix<rgb_pixel>> chips;
        for (auto& n : list(chipdir, ".png")) { matrix<rgb_pixel> m; load_image(m, n); chips.push_back(m); }
        if (chips.empty()) { std::fprintf(stderr, "no chips\n"); return 1; }
        for (int b : {1, 8, 32}) {
            std::vector<matrix<rgb_pixel>> batch;
            for (int i = 0; i < b; ++i) batch.push_back(chips[i % chips.size()]);
            measure("embed", "batch=" + std::to_string(b), seconds, b, [&] { return net(batch, b); });
        }
    }
    mmod_net det;
    deserialize(models + "/mmod_human_face_detector.dat") >> det;
    if (wants("mmod")) {
        matrix<rgb_pixel> img;
        load_image(img, image);
        for (int up : {0, 1}) {
            pyramid_down<2> pyr;
            auto run = [&]() { matrix<rgb_pixel> y = img; for (int i = 0; i < up; ++i) pyramid_up(y, pyr); return det(y); };
            measure("mmod", "upsample=" + std::to_string(up) + " image=" + std::to_string(img.nc()) + "x" + std::to_string(img.nr()),
                    seconds, 1, run);
        }
    }
    if (wants("pipeline") && argc > 6) {
        std::string dir = argv[6];
        auto files = list(dir, ".jpg");
        if (files.empty()) { std::fprintf(stderr, "no .jpg in %s\n", dir.c_str()); return 1; }
        shape_predictor sp;
        deserialize(models + "/shape_predictor_5_face_landmarks.dat") >> sp;
        size_t faces = 0;
        auto run = [&]() {
            faces = 0;
            for (auto& f : files) {
                matrix<rgb_pixel> img;
                load_image(img, f);
                auto dets = det(img);
                std::vector<matrix<rgb_pixel>> chips;
                for (auto& d : dets) {
                    auto shape = sp(img, d.rect);
                    matrix<rgb_pixel> chip;
                    extract_image_chip(img, get_face_chip_details(shape, 150, 0.25), chip);
                    chips.push_back(std::move(chip));
                }
                faces += chips.size();
                if (!chips.empty()) net(chips, 16);
            }
        };
        run();
        measure("pipeline", "upsample=0 images=" + std::to_string(files.size()) + " faces=" + std::to_string(faces), seconds,
                (int)files.size(), run);
    }
    return 0;
}
