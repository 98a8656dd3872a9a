// SIMD distance kernels. Compiled once with the portable path and once per function with
// __attribute__((target("avx2,fma"))); the choice is made at load time with __builtin_cpu_supports.
#include "CFacetKernels.h"
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FACET_X86 1
#endif

static int facet_avx2 = 0;

#ifdef FACET_X86
__attribute__((constructor)) static void facet_kernels_init(void) {
    __builtin_cpu_init();
    facet_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

int facet_kernels_use_avx2(void) { return facet_avx2; }

// MARK: portable

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) { bits = sign; }
        else { // subnormal
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

static uint16_t float_to_half(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}

static float l2_generic(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0; size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i+1] - b[i+1], d2 = a[i+2] - b[i+2], d3 = a[i+3] - b[i+3];
        s0 += d0*d0; s1 += d1*d1; s2 += d2*d2; s3 += d3*d3;
    }
    for (; i < n; i++) { float d = a[i] - b[i]; s0 += d*d; }
    return (s0 + s1) + (s2 + s3);
}
static float dot_generic(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0; size_t i = 0;
    for (; i + 4 <= n; i += 4) { s0 += a[i]*b[i]; s1 += a[i+1]*b[i+1]; s2 += a[i+2]*b[i+2]; s3 += a[i+3]*b[i+3]; }
    for (; i < n; i++) s0 += a[i]*b[i];
    return (s0 + s1) + (s2 + s3);
}
static float l2_f16_generic(const float *a, const uint16_t *b, size_t n) {
    float s = 0; for (size_t i = 0; i < n; i++) { float d = a[i] - half_to_float(b[i]); s += d*d; } return s;
}
static float dot_f16_generic(const float *a, const uint16_t *b, size_t n) {
    float s = 0; for (size_t i = 0; i < n; i++) s += a[i] * half_to_float(b[i]); return s;
}
static uint32_t l2_u8_generic(const uint8_t *a, const uint8_t *b, size_t n) {
    uint32_t s = 0; for (size_t i = 0; i < n; i++) { int d = (int)a[i] - (int)b[i]; s += (uint32_t)(d*d); } return s;
}

// MARK: AVX2 + FMA

#ifdef FACET_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo); __m128 sums = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, sums); sums = _mm_add_ss(sums, sh);
    return _mm_cvtss_f32(sums);
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a+i+8), _mm256_loadu_ps(b+i+8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a+i+16), _mm256_loadu_ps(b+i+16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a+i+24), _mm256_loadu_ps(b+i+24));
        s0 = _mm256_fmadd_ps(d0, d0, s0); s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2); s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i)); s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) { float d = a[i] - b[i]; s += d*d; }
    return s;
}
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+8), _mm256_loadu_ps(b+i+8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+16), _mm256_loadu_ps(b+i+16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+24), _mm256_loadu_ps(b+i+24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i]*b[i];
    return s;
}
__attribute__((target("avx2,fma,f16c"))) static float l2_f16_avx2(const float *a, const uint16_t *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i+8)));
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a+i), b0), d1 = _mm256_sub_ps(_mm256_loadu_ps(a+i+8), b1);
        s0 = _mm256_fmadd_ps(d0, d0, s0); s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) { float d = a[i] - half_to_float(b[i]); s += d*d; }
    return s;
}
__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const float *a, const uint16_t *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i+8)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), b0, s0); s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+8), b1, s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * half_to_float(b[i]);
    return s;
}
__attribute__((target("avx2"))) static uint32_t l2_u8_avx2(const uint8_t *a, const uint8_t *b, size_t n) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i va = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a+i)));
        __m256i vb = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(b+i)));
        __m256i d = _mm256_sub_epi16(va, vb);
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
    }
    __m128i lo = _mm256_castsi256_si128(acc), hi = _mm256_extracti128_si256(acc, 1);
    __m128i s4 = _mm_add_epi32(lo, hi);
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    uint32_t s = (uint32_t)_mm_cvtsi128_si32(s4);
    for (; i < n; i++) { int d = (int)a[i] - (int)b[i]; s += (uint32_t)(d*d); }
    return s;
}
#endif

// MARK: dispatch

float facet_l2sq_f32(const float *a, const float *b, size_t n) {
#ifdef FACET_X86
    if (facet_avx2) return l2_avx2(a, b, n);
#endif
    return l2_generic(a, b, n);
}
float facet_dot_f32(const float *a, const float *b, size_t n) {
#ifdef FACET_X86
    if (facet_avx2) return dot_avx2(a, b, n);
#endif
    return dot_generic(a, b, n);
}
float facet_l2sq_f16(const float *a, const uint16_t *b, size_t n) {
#ifdef FACET_X86
    if (facet_avx2) return l2_f16_avx2(a, b, n);
#endif
    return l2_f16_generic(a, b, n);
}
float facet_dot_f16(const float *a, const uint16_t *b, size_t n) {
#ifdef FACET_X86
    if (facet_avx2) return dot_f16_avx2(a, b, n);
#endif
    return dot_f16_generic(a, b, n);
}
uint32_t facet_l2sq_u8(const uint8_t *a, const uint8_t *b, size_t n) {
#ifdef FACET_X86
    if (facet_avx2) return l2_u8_avx2(a, b, n);
#endif
    return l2_u8_generic(a, b, n);
}
void facet_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half(src[i]);
}
void facet_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}
void facet_row_norms_f32(const float *rows, size_t count, size_t dim, size_t stride, float *out) {
    for (size_t r = 0; r < count; r++) out[r] = facet_dot_f32(rows + r * stride, rows + r * stride, dim);
}
