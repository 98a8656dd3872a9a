// CFacetKernels: SIMD distance kernels for FacetIndex (L2, inner product, fp16 and uint8 codes).
// Each kernel picks AVX2+FMA at run time when the CPU has it and falls back to portable C otherwise.
#ifndef CFACETKERNELS_H
#define CFACETKERNELS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Squared Euclidean distance between two float vectors of length n.
float facet_l2sq_f32(const float *a, const float *b, size_t n);
/// Inner product of two float vectors of length n.
float facet_dot_f32(const float *a, const float *b, size_t n);
/// Squared Euclidean distance between a float query and an IEEE half-precision vector.
float facet_l2sq_f16(const float *a, const uint16_t *b, size_t n);
/// Inner product of a float query and an IEEE half-precision vector.
float facet_dot_f16(const float *a, const uint16_t *b, size_t n);
/// Squared Euclidean distance between two uint8 code vectors (integer result).
uint32_t facet_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t n);
/// Converts n floats to IEEE half precision (round to nearest even).
void facet_f32_to_f16(const float *src, uint16_t *dst, size_t n);
/// Converts n IEEE halves to floats.
void facet_f16_to_f32(const uint16_t *src, float *dst, size_t n);
/// Squared norms of `count` rows of `dim` floats each (row stride `stride` floats).
void facet_row_norms_f32(const float *rows, size_t count, size_t dim, size_t stride, float *out);
/// 1 when the AVX2+FMA kernels are in use, 0 for the portable ones.
int facet_kernels_use_avx2(void);

/// Hints the CPU to pull the cache line holding `p` (and the next one) into cache.
static inline void facet_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}
static inline void facet_prefetch_span(const void *p, size_t bytes) {
    const char *c = (const char *)p;
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
}

#ifdef __cplusplus
}
#endif
#endif
