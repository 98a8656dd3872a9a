// CFacetConv: Winograd and patch-matrix convolutions, pools and adds on NHWC tensors (see CFacetConv.h).
#include "CFacetConv.h"
#include <string.h>

// OpenBLAS's CBLAS entry point (declared here so this target needs no header search path; LP64 int).
extern void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);
enum { kRowMajor = 101, kNoTrans = 111 };

typedef float v8 __attribute__((vector_size(32)));

#if defined(__x86_64__)
#define FCONV_X86 1
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define SFX(x) x##_avx2
#include "impl/kernels.h"
#undef SFX
#pragma clang attribute pop
#endif

// The portable copy passes 8-float vectors between always-inline helpers only, so the ABI note does not apply.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wpsabi"
#define SFX(x) x##_generic
#include "impl/kernels.h"
#undef SFX
#pragma clang diagnostic pop

static int fconv_avx2 = 0;
#ifdef FCONV_X86
__attribute__((constructor)) static void fconv_init(void) {
    __builtin_cpu_init();
    fconv_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

int fconv_use_avx2(void) { return fconv_avx2; }

// MARK: Winograd

void fconv_winograd_weights(int m, int c, int k, const float *w, const float *scale, float *u) {
    static const double g4[6][3] = {
        {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    static const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    const int a = m + 2;
    for (int ko = 0; ko < k; ko++) {
        double sc = scale ? scale[ko] : 1.0;
        for (int ci = 0; ci < c; ci++) {
            const float *f = w + ((long)ko * c + ci) * 9;
            double t[6][3];
            for (int i = 0; i < a; i++)
                for (int j = 0; j < 3; j++) {
                    double s = 0;
                    for (int l = 0; l < 3; l++) s += (m == 4 ? g4[i][l] : g2[i][l]) * f[l * 3 + j];
                    t[i][j] = s;
                }
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) {
                    double s = 0;
                    for (int l = 0; l < 3; l++) s += t[i][l] * (m == 4 ? g4[j][l] : g2[j][l]);
                    u[((long)(i * a + j) * c + ci) * k + ko] = (float)(s * sc);
                }
        }
    }
}

void fconv_winograd_input(int m, const float *x, int n, int h, int w, int c, long t0, long t1, float *v) {
#ifdef FCONV_X86
    if (fconv_avx2) { winograd_input_avx2(m, x, n, h, w, c, t0, t1, v); return; }
#endif
    winograd_input_generic(m, x, n, h, w, c, t0, t1, v);
}

void fconv_winograd_gemm(int m, long tb, int c, int k, const float *v, const float *u, float *mm, int xi0, int xi1) {
    for (int xi = xi0; xi < xi1; xi++) {
        cblas_sgemm(kRowMajor, kNoTrans, kNoTrans, (int)tb, k, c, 1.0f, v + (long)xi * tb * c, c,
                    u + (long)xi * c * k, k, 0.0f, mm + (long)xi * tb * k, k);
    }
    (void)m;
}

void fconv_winograd_output(int m, const float *mm, int n, int h, int w, int k, long t0, long t1,
                           fconv_epilogue ep, float *y) {
#ifdef FCONV_X86
    if (fconv_avx2) { winograd_output_avx2(m, mm, n, h, w, k, t0, t1, ep, y); return; }
#endif
    winograd_output_generic(m, mm, n, h, w, k, t0, t1, ep, y);
}

// MARK: patch matrix + GEMM

void fconv_gemm_weights(int c, int k, int kh, int kw, const float *w, const float *scale, float *w2) {
    for (int ko = 0; ko < k; ko++) {
        float sc = scale ? scale[ko] : 1.0f;
        for (int ci = 0; ci < c; ci++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++)
                    w2[((long)(ky * kw + kx) * c + ci) * k + ko] = w[(((long)ko * c + ci) * kh + ky) * kw + kx] * sc;
    }
}

void fconv_epilogue_rows(float *y, int k, long p0, long p1, fconv_epilogue ep) {
    if (!ep.bias && !ep.res && !ep.relu) return;
    for (long p = p0; p < p1; p++) {
        float *row = y + p * k;
        if (ep.bias) for (int j = 0; j < k; j++) row[j] += ep.bias[j];
        if (ep.res) {
            const float *r = ep.res + p * ep.res_c;
            int lim = ep.res_c < k ? ep.res_c : k;
            for (int j = 0; j < lim; j++) row[j] += r[j];
        }
        if (ep.relu) for (int j = 0; j < k; j++) row[j] = row[j] > 0 ? row[j] : 0;
    }
}

void fconv_im2col_conv(const float *x, int n, int h, int w, int c, int k, int kh, int kw, int sy, int sx, int py, int px,
                       int oh, int ow, long p0, long p1, const float *w2, fconv_epilogue ep, float *patch, float *y) {
    const long r = (long)kh * kw * c;
    (void)n;
    for (long p = p0; p < p1; p++) {
        const long ni = p / ((long)oh * ow);
        const int rem = (int)(p - ni * oh * ow);
        const int oy = rem / ow, ox = rem % ow;
        float *d = patch + (p - p0) * r;
        const int ix0 = ox * sx - px;
        const int inside = ix0 >= 0 && ix0 + kw <= w;
        for (int ky = 0; ky < kh; ky++) {
            const int iy = oy * sy - py + ky;
            float *dr = d + (long)ky * kw * c;
            if (iy < 0 || iy >= h) { memset(dr, 0, sizeof(float) * kw * c); continue; }
            const float *srow = x + ((ni * h + iy) * (long)w) * c;
            if (inside) { memcpy(dr, srow + (long)ix0 * c, sizeof(float) * kw * c); continue; }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx;
                if (ix < 0 || ix >= w) memset(dr + kx * c, 0, sizeof(float) * c);
                else memcpy(dr + kx * c, srow + (long)ix * c, sizeof(float) * c);
            }
        }
    }
    cblas_sgemm(kRowMajor, kNoTrans, kNoTrans, (int)(p1 - p0), k, (int)r, 1.0f, patch, (int)r, w2, k, 0.0f, y + p0 * k, k);
    fconv_epilogue_rows(y, k, p0, p1, ep);
}

// MARK: pools, add, layout

void fconv_pool(const float *x, int n, int h, int w, int c, int wh, int ww, int sy, int sx, int py, int px,
                int oh, int ow, int is_max, float *y) {
    for (long ni = 0; ni < n; ni++)
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * sy - py, y1 = y0 + wh;
            if (y0 < 0) y0 = 0;
            if (y1 > h) y1 = h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * sx - px, x1 = x0 + ww;
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
                float *o = y + ((ni * oh + oy) * (long)ow + ox) * c;
                const int area = (y1 - y0) * (x1 - x0);
                if (area <= 0) { memset(o, 0, sizeof(float) * c); continue; }
                if (is_max) {
                    for (int j = 0; j < c; j++) o[j] = -__builtin_inff();
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++) {
                            const float *s = x + ((ni * h + yy) * (long)w + xx) * c;
                            for (int j = 0; j < c; j++) o[j] = s[j] > o[j] ? s[j] : o[j];
                        }
                } else {
                    for (int j = 0; j < c; j++) o[j] = 0;
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++) {
                            const float *s = x + ((ni * h + yy) * (long)w + xx) * c;
                            for (int j = 0; j < c; j++) o[j] += s[j];
                        }
                    const float inv = (float)area;
                    for (int j = 0; j < c; j++) o[j] /= inv;
                }
            }
        }
}

void fconv_add(const float *a, int ac, const float *b, int bc, long pixels, int relu, float *y) {
    for (long p = 0; p < pixels; p++) {
        const float *pa = a + p * ac, *pb = b + p * bc;
        float *o = y + p * ac;
        for (int j = 0; j < ac; j++) {
            float s = pa[j] + (j < bc ? pb[j] : 0.0f);
            o[j] = relu ? (s > 0 ? s : 0) : s;
        }
    }
}

void fconv_nchw_to_nhwc(const float *x, int n, int c, int hw, float *y) {
    for (long s = 0; s < n; s++)
        for (int ci = 0; ci < c; ci++) {
            const float *src = x + (s * c + ci) * (long)hw;
            float *dst = y + s * (long)c * hw + ci;
            for (int p = 0; p < hw; p++) dst[(long)p * c] = src[p];
        }
}

void fconv_nhwc_to_nchw(const float *x, int n, int c, int hw, float *y) {
    for (long s = 0; s < n; s++)
        for (int ci = 0; ci < c; ci++) {
            const float *src = x + s * (long)c * hw + ci;
            float *dst = y + (s * c + ci) * (long)hw;
            for (int p = 0; p < hw; p++) dst[p] = src[(long)p * c];
        }
}
