// Convolution kernels for FacetNN's fused NHWC executor (FusedNetwork.swift).
// Tensors are NHWC: n samples × h rows × w columns × c channels, contiguous, float32.
// Every kernel works on a range of tiles or output pixels so the caller can split work between threads;
// scratch buffers are the caller's. GEMMs go through OpenBLAS's cblas_sgemm.
// SIMD paths are compiled twice (AVX2+FMA and portable) and chosen at load time.
#ifndef CFACETCONV_H
#define CFACETCONV_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the AVX2+FMA kernels are in use.
int fconv_use_avx2(void);

/// Epilogue applied to every output value y[p][k] (p an output pixel):
/// y = y + bias[k] (bias may be NULL) + (k < res_c ? res[p*res_c + k] : 0) (res may be NULL), then max(y, 0) if relu.
typedef struct {
    const float *bias;
    const float *res;
    int res_c;
    int relu;
} fconv_epilogue;

// MARK: Winograd F(m×m, 3×3), m = 2 or 4, stride 1, padding 1, same output size as input.
// Tiles are numbered over (sample, tile row, tile column): tiles_per_sample = ceil(h/m)·ceil(w/m).
// a = m + 2; transformed weights U are [a·a][c][k]; V (input transforms of a block of tb tiles) is [a·a][tb][c];
// M (products) is [a·a][tb][k].

/// Winograd-domain weights from dlib's filter layout w[k][c][3][3] (computed in double).
/// Optional per-filter scale (folded batch norm) multiplies filter k. u must hold a·a·c·k floats.
void fconv_winograd_weights(int m, int c, int k, const float *w, const float *scale, float *u);

/// Input transform of tiles [t0, t1) into v ([a·a][t1-t0][c]). c must be a multiple of 8.
void fconv_winograd_input(int m, const float *x, int n, int h, int w, int c, long t0, long t1, float *v);

/// Products for tile positions [xi0, xi1): mm[xi] = v[xi] (tb×c) · u[xi] (c×k).
void fconv_winograd_gemm(int m, long tb, int c, int k, const float *v, const float *u, float *mm, int xi0, int xi1);

/// Output transform of tiles [t0, t1) (mm as written by fconv_winograd_gemm for tb = t1 - t0) into y (NHWC,
/// n×h×w×k), with the epilogue. k must be a multiple of 8; res_c (if res) a multiple of 8 and <= k.
void fconv_winograd_output(int m, const float *mm, int n, int h, int w, int k, long t0, long t1,
                           fconv_epilogue ep, float *y);

// MARK: General convolution: patch matrix + GEMM (any kernel size, stride, padding).

/// Weights for fconv_im2col_conv: w2[(ky·kw + kx)·c + ci][ko] = w[ko][ci][ky][kx]·scale[ko] (scale may be NULL).
void fconv_gemm_weights(int c, int k, int kh, int kw, const float *w, const float *scale, float *w2);

/// Output pixels [p0, p1) (numbered over sample, row, column) of a convolution of x (n×h×w×c) into y
/// (n×oh×ow×k, rows p0..p1 of the p×k matrix). patch must hold (p1-p0)·kh·kw·c floats.
void fconv_im2col_conv(const float *x, int n, int h, int w, int c, int k, int kh, int kw, int sy, int sx, int py, int px,
                       int oh, int ow, long p0, long p1, const float *w2, fconv_epilogue ep, float *patch, float *y);

/// Applies the epilogue to rows [p0, p1) of y (p×k).
void fconv_epilogue_rows(float *y, int k, long p0, long p1, fconv_epilogue ep);

// MARK: Pools (dlib's geometry: window clipped to the image; average over the clipped window).
void fconv_pool(const float *x, int n, int h, int w, int c, int wh, int ww, int sy, int sx, int py, int px,
                int oh, int ow, int is_max, float *y);

/// y = max(a + b, 0) or a + b where b has bc <= ac channels (dlib's add_prev zero padding along channels).
void fconv_add(const float *a, int ac, const float *b, int bc, long pixels, int relu, float *y);

/// NCHW (planar) <-> NHWC.
void fconv_nchw_to_nhwc(const float *x, int n, int c, int hw, float *y);
void fconv_nhwc_to_nchw(const float *x, int n, int c, int hw, float *y);

#ifdef __cplusplus
}
#endif
#endif
