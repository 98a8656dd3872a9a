// HNSW hot paths in C: the layer search, greedy descent and neighbour-selection heuristic of
// FacetIndex's HNSWIndex (the Swift side owns the storage, locks and mutations).
//
// Each entry point is compiled twice: once for AVX2+FMA (distance kernels inlined into the loop) and once
// portable; the choice is made per call from the load-time CPU check. Specialised per metric and storage kind
// so the inner loop has no branches on either.
#include "CFacetKernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FACET_X86 1
#endif

int facet_kernels_use_avx2(void);

#define ALWAYS_INLINE inline __attribute__((always_inline))

// MARK: distance kernels (inlinable copies; kernels.c keeps the exported ones)

static ALWAYS_INLINE float g_l2(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0; size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = a[i] - b[i], d1 = a[i+1] - b[i+1], d2 = a[i+2] - b[i+2], d3 = a[i+3] - b[i+3];
        s0 += d0*d0; s1 += d1*d1; s2 += d2*d2; s3 += d3*d3;
    }
    for (; i < n; i++) { float d = a[i] - b[i]; s0 += d*d; }
    return (s0 + s1) + (s2 + s3);
}
static ALWAYS_INLINE float g_dot(const float *a, const float *b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0; size_t i = 0;
    for (; i + 4 <= n; i += 4) { s0 += a[i]*b[i]; s1 += a[i+1]*b[i+1]; s2 += a[i+2]*b[i+2]; s3 += a[i+3]*b[i+3]; }
    for (; i < n; i++) s0 += a[i]*b[i];
    return (s0 + s1) + (s2 + s3);
}
static ALWAYS_INLINE float g_half(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else { exp = 127 - 15 + 1; while ((mant & 0x400) == 0) { mant <<= 1; exp--; } mant &= 0x3ff; bits = sign | (exp << 23) | (mant << 13); }
    } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f; memcpy(&f, &bits, 4); return f;
}
static ALWAYS_INLINE float g_l2_f16(const float *a, const uint16_t *b, size_t n) {
    float s = 0; for (size_t i = 0; i < n; i++) { float d = a[i] - g_half(b[i]); s += d*d; } return s;
}
static ALWAYS_INLINE float g_dot_f16(const float *a, const uint16_t *b, size_t n) {
    float s = 0; for (size_t i = 0; i < n; i++) s += a[i] * g_half(b[i]); return s;
}
// int8 codes: value_i = offset_i + scale_i * code_i. The query is passed raw.
static ALWAYS_INLINE float g_l2_u8(const float *a, const uint8_t *c, size_t n, const float *scale, const float *offset) {
    float s = 0; for (size_t i = 0; i < n; i++) { float d = a[i] - (offset[i] + scale[i] * (float)c[i]); s += d*d; } return s;
}
static ALWAYS_INLINE float g_dot_u8(const float *a, const uint8_t *c, size_t n, const float *scale, const float *offset) {
    float s = 0; for (size_t i = 0; i < n; i++) s += a[i] * (offset[i] + scale[i] * (float)c[i]); return s;
}

#ifdef FACET_X86
#define AVX __attribute__((target("avx2,fma,f16c")))
static ALWAYS_INLINE AVX float x_hsum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo), sums = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, sums); sums = _mm_add_ss(sums, sh);
    return _mm_cvtss_f32(sums);
}
static ALWAYS_INLINE AVX float x_l2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a+i+8), _mm256_loadu_ps(b+i+8));
        s0 = _mm256_fmadd_ps(d0, d0, s0); s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= n; i += 8) { __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i)); s0 = _mm256_fmadd_ps(d, d, s0); }
    float s = x_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) { float d = a[i] - b[i]; s += d*d; }
    return s;
}
static ALWAYS_INLINE AVX float x_dot(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+8), _mm256_loadu_ps(b+i+8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), _mm256_loadu_ps(b+i), s0);
    float s = x_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i]*b[i];
    return s;
}
static ALWAYS_INLINE AVX float x_l2_f16(const float *a, const uint16_t *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i+8)));
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a+i), b0), d1 = _mm256_sub_ps(_mm256_loadu_ps(a+i+8), b1);
        s0 = _mm256_fmadd_ps(d0, d0, s0); s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float s = x_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) { float d = a[i] - g_half(b[i]); s += d*d; }
    return s;
}
static ALWAYS_INLINE AVX float x_dot_f16(const float *a, const uint16_t *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b+i+8)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), b0, s0); s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+8), b1, s1);
    }
    float s = x_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * g_half(b[i]);
    return s;
}
static ALWAYS_INLINE AVX __m256 x_decode8(const uint8_t *c, const float *scale, const float *offset) {
    __m256 codes = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c)));
    return _mm256_fmadd_ps(codes, _mm256_loadu_ps(scale), _mm256_loadu_ps(offset));
}
static ALWAYS_INLINE AVX float x_l2_u8(const float *a, const uint8_t *c, size_t n, const float *scale, const float *offset) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a+i), x_decode8(c+i, scale+i, offset+i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a+i+8), x_decode8(c+i+8, scale+i+8, offset+i+8));
        s0 = _mm256_fmadd_ps(d0, d0, s0); s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float s = x_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) { float d = a[i] - (offset[i] + scale[i] * (float)c[i]); s += d*d; }
    return s;
}
static ALWAYS_INLINE AVX float x_dot_u8(const float *a, const uint8_t *c, size_t n, const float *scale, const float *offset) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i), x_decode8(c+i, scale+i, offset+i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a+i+8), x_decode8(c+i+8, scale+i+8, offset+i+8), s1);
    }
    float s = x_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * (offset[i] + scale[i] * (float)c[i]);
    return s;
}
#endif

/// The stored vector of `slot` as floats (decoded for fp16 / int8 storage).
void facet_hnsw_decode(const facet_hnsw_graph *g, uint32_t slot, float *out) {
    const void *v = g->vectors + (size_t)slot * g->vector_stride;
    switch (g->vector_kind) {
    case 0: memcpy(out, v, g->dim * 4); break;
    case 1: facet_f16_to_f32((const uint16_t *)v, out, g->dim); break;
    default: for (size_t i = 0; i < g->dim; i++) out[i] = g->sq_offset[i] + g->sq_scale[i] * (float)((const uint8_t *)v)[i];
    }
}

// MARK: generic bodies, specialised by (simd, metric, kind) through constant arguments after inlining

static ALWAYS_INLINE const void *vec_of(const facet_hnsw_graph *g, uint32_t slot) {
    return g->vectors + (size_t)slot * g->vector_stride;
}
static ALWAYS_INLINE const uint32_t *links_of(const facet_hnsw_graph *g, uint32_t slot, int level) {
    if (level == 0) return (const uint32_t *)(g->level0 + (size_t)slot * g->stride);
    return g->upper[slot] + (size_t)(level - 1) * g->upper_stride;
}

#define DIST_BODY(L2, DOT, L2H, DOTH, L2Q, DOTQ)                                                            \
    const void *v = vec_of(g, slot);                                                                           \
    switch (kind) {                                                                                            \
    case 0: return metric == 0 ? L2(q, (const float *)v, g->dim) : 1.0f - DOT(q, (const float *)v, g->dim);    \
    case 1: return metric == 0 ? L2H(q, (const uint16_t *)v, g->dim) : 1.0f - DOTH(q, (const uint16_t *)v, g->dim); \
    default: return metric == 0 ? L2Q(q, (const uint8_t *)v, g->dim, g->sq_scale, g->sq_offset)              \
                                : 1.0f - DOTQ(q, (const uint8_t *)v, g->dim, g->sq_scale, g->sq_offset);       \
    }

static ALWAYS_INLINE float dist_g(const facet_hnsw_graph *g, const float *q, uint32_t slot, int metric, int kind) {
    DIST_BODY(g_l2, g_dot, g_l2_f16, g_dot_f16, g_l2_u8, g_dot_u8)
}
#ifdef FACET_X86
static ALWAYS_INLINE AVX float dist_x(const facet_hnsw_graph *g, const float *q, uint32_t slot, int metric, int kind) {
    DIST_BODY(x_l2, x_dot, x_l2_f16, x_dot_f16, x_l2_u8, x_dot_u8)
}
#endif

// Min-heap (closest first) and max-heap (farthest first) on growable malloc'd buffers.
static int heap_reserve(facet_candidate **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    facet_candidate *p = (facet_candidate *)realloc(*buf, n * sizeof(facet_candidate));
    if (!p) return 0;
    *buf = p; *cap = n; return 1;
}
#define HEAP_PUSH(buf, count, c, BEFORE) do {                                   \
    size_t i_ = (count)++;                                                        \
    while (i_ > 0) { size_t p_ = (i_ - 1) >> 1;                                   \
        if (BEFORE((c), (buf)[p_])) { (buf)[i_] = (buf)[p_]; i_ = p_; } else break; } \
    (buf)[i_] = (c); } while (0)
#define HEAP_POP(buf, count, BEFORE) do {                                       \
    size_t n_ = --(count);                                                        \
    if (n_ > 0) { facet_candidate last_ = (buf)[n_]; size_t i_ = 0;               \
        for (;;) { size_t l_ = 2 * i_ + 1; if (l_ >= n_) break; size_t c_ = l_;   \
            if (l_ + 1 < n_ && BEFORE((buf)[l_ + 1], (buf)[l_])) c_ = l_ + 1;      \
            if (BEFORE((buf)[c_], last_)) { (buf)[i_] = (buf)[c_]; i_ = c_; } else break; } \
        (buf)[i_] = last_; } } while (0)
#define CLOSER(a, b) ((a).distance < (b).distance)
#define FARTHER(a, b) ((a).distance > (b).distance)

#define GREEDY_BODY(DIST)                                                                          \
    uint32_t current = entry;                                                                         \
    float best = DIST(g, q, current, metric, kind);                                                   \
    for (int level = top_level; level >= bottom_level; level--) {                                     \
        int changed = 1;                                                                              \
        while (changed) {                                                                             \
            changed = 0;                                                                              \
            const uint32_t *list = links_of(g, current, level);                                       \
            uint32_t n = list[0];                                                                     \
            for (uint32_t j = 1; j <= n; j++) {                                                       \
                uint32_t c = list[j];                                                                 \
                float d = DIST(g, q, c, metric, kind);                                                \
                if (d < best) { best = d; current = c; changed = 1; }                                 \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
    return current;

// The layer search (hnswlib's searchBaseLayerST). Unvisited neighbours of the expanded node are gathered
// first and all their vectors prefetched at once, so the memory latencies overlap; then distances.
#define SEARCH_BODY(DIST)                                                                                      \
    uint16_t *visited = s->visited; const uint16_t tag = s->tag;                                                  \
    const uint8_t *states = g->states; uint32_t *pending = s->pending;                                            \
    const size_t vbytes = kind == 0 ? g->dim * 4 : kind == 1 ? g->dim * 2 : g->dim;                               \
    size_t nc = 0, nt = 0;                                                                                        \
    if (!heap_reserve(&s->top, &s->top_capacity, ef + 2)) return 0;                                              \
    if (!heap_reserve(&s->candidates, &s->candidates_capacity, ef + 64)) return 0;                               \
    facet_candidate *top = s->top;                                                                               \
    float d0 = DIST(g, q, entry, metric, kind);                                                                  \
    visited[entry] = tag;                                                                                         \
    float lower = INFINITY;                                                                                       \
    if (states[entry] == 1 && (!accept || accept(actx, entry))) {                                                 \
        facet_candidate c = { d0, entry }; HEAP_PUSH(top, nt, c, FARTHER); lower = d0; }                          \
    { facet_candidate c = { d0, entry }; HEAP_PUSH(s->candidates, nc, c, CLOSER); }                              \
    while (nc > 0) {                                                                                              \
        facet_candidate current = s->candidates[0];                                                               \
        if (current.distance > lower && nt >= ef) break;                                                          \
        HEAP_POP(s->candidates, nc, CLOSER);                                                                      \
        const uint32_t *list = links_of(g, current.id, level);                                                    \
        uint32_t n = list[0];                                                                                     \
        for (uint32_t j = 1; j <= n; j++) __builtin_prefetch(visited + list[j], 1, 3);                           \
        uint32_t m = 0;                                                                                           \
        for (uint32_t j = 1; j <= n; j++) {                                                                       \
            uint32_t nb = list[j];                                                                                \
            if (visited[nb] == tag) continue;                                                                     \
            visited[nb] = tag;                                                                                    \
            const char *p = (const char *)vec_of(g, nb);                                                          \
            const size_t span = vbytes + ((uintptr_t)p & 63); /* every line the vector touches */               \
            for (size_t off = 0; off < span; off += 64) __builtin_prefetch(p + off, 0, 3);                        \
            pending[m++] = nb;                                                                                    \
        }                                                                                                         \
        if (nc + m > s->candidates_capacity && !heap_reserve(&s->candidates, &s->candidates_capacity, nc + m)) break; \
        facet_candidate *cand = s->candidates;                                                                    \
        for (uint32_t i = 0; i < m; i++) {                                                                        \
            uint32_t nb = pending[i];                                                                             \
            float d = DIST(g, q, nb, metric, kind);                                                               \
            if (nt < ef || d < lower) {                                                                           \
                facet_candidate c = { d, nb };                                                                    \
                HEAP_PUSH(cand, nc, c, CLOSER);                                                                   \
                if (states[nb] == 1 && (!accept || accept(actx, nb))) {                                           \
                    HEAP_PUSH(top, nt, c, FARTHER);                                                               \
                    if (nt > ef) HEAP_POP(top, nt, FARTHER);                                                      \
                }                                                                                                 \
                if (nt > 0) lower = top[0].distance;                                                              \
            }                                                                                                     \
        }                                                                                                         \
        if (nc > 0) { const char *l_ = (const char *)links_of(g, cand[0].id, level);                              \
            __builtin_prefetch(l_, 0, 3); __builtin_prefetch(l_ + 64, 0, 3); __builtin_prefetch(l_ + 127, 0, 3); }   \
    }                                                                                                             \
    /* heap sort: repeatedly move the farthest to the end → ascending order in place */                          \
    size_t count = nt;                                                                                            \
    while (nt > 1) { facet_candidate far = top[0]; HEAP_POP(top, nt, FARTHER); top[nt] = far; }                  \
    return count;

#define SELECT_BODY(DIST)                                                                                      \
    if (n <= m) { memcpy(out, sorted, n * sizeof(facet_candidate)); return n; }                                  \
    size_t kept = 0;                                                                                              \
    float *decoded = kind == 0 ? NULL : (float *)malloc(g->dim * sizeof(float));                                  \
    if (kind != 0 && !decoded) { memcpy(out, sorted, m * sizeof(facet_candidate)); return m; }                   \
    for (size_t i = 0; i < n && kept < m; i++) {                                                                  \
        facet_candidate c = sorted[i];                                                                            \
        const float *cv = (const float *)vec_of(g, c.id);                                                         \
        if (kind != 0) { facet_hnsw_decode(g, c.id, decoded); cv = decoded; }                                     \
        int good = 1;                                                                                             \
        for (size_t r = 0; r < kept; r++) {                                                                       \
            if (DIST(g, cv, out[r].id, metric, kind) < c.distance) { good = 0; break; }                           \
        }                                                                                                         \
        if (good) out[kept++] = c;                                                                                \
    }                                                                                                             \
    free(decoded);                                                                                                \
    return kept;

#define DEFINE_VARIANTS(SUFFIX, ATTR, DIST)                                                                    \
    static ATTR uint32_t greedy_##SUFFIX(const facet_hnsw_graph *g, const float *q, uint32_t entry, int top_level, \
                                        int bottom_level, const int metric, const int kind) { GREEDY_BODY(DIST) }  \
    static ATTR size_t search_##SUFFIX(const facet_hnsw_graph *g, const float *q, uint32_t entry, int level,    \
                                      size_t ef, facet_hnsw_scratch *s, facet_accept_fn accept, void *actx,     \
                                      const int metric, const int kind) { SEARCH_BODY(DIST) }                   \
    static ATTR size_t select_##SUFFIX(const facet_hnsw_graph *g, const facet_candidate *sorted, size_t n,     \
                                      size_t m, facet_candidate *out, const int metric, const int kind) { SELECT_BODY(DIST) }

// Generic bodies per SIMD level, always inlined into the per-(metric, kind) wrappers below, which pass
// constants: the compiler clones the loop per combination with no branches on metric or kind inside.
DEFINE_VARIANTS(g, ALWAYS_INLINE, dist_g)
#ifdef FACET_X86
DEFINE_VARIANTS(x, ALWAYS_INLINE AVX, dist_x)
#endif

#define DISPATCH(NAME, ATTR, RET, PARAMS, ARGS)                                                                \
    static ATTR RET NAME##_l2_f32 PARAMS { return NAME(ARGS, 0, 0); }                                            \
    static ATTR RET NAME##_ip_f32 PARAMS { return NAME(ARGS, 1, 0); }                                            \
    static ATTR RET NAME##_l2_f16 PARAMS { return NAME(ARGS, 0, 1); }                                            \
    static ATTR RET NAME##_ip_f16 PARAMS { return NAME(ARGS, 1, 1); }                                            \
    static ATTR RET NAME##_l2_u8 PARAMS { return NAME(ARGS, 0, 2); }                                             \
    static ATTR RET NAME##_ip_u8 PARAMS { return NAME(ARGS, 1, 2); }

#define SEARCH_PARAMS (const facet_hnsw_graph *g, const float *q, uint32_t entry, int level, size_t ef, \
                       facet_hnsw_scratch *s, facet_accept_fn accept, void *actx)
#define SEARCH_ARGS g, q, entry, level, ef, s, accept, actx
#define GREEDY_PARAMS (const facet_hnsw_graph *g, const float *q, uint32_t entry, int top_level, int bottom_level)
#define GREEDY_ARGS g, q, entry, top_level, bottom_level
#define SELECT_PARAMS (const facet_hnsw_graph *g, const facet_candidate *sorted, size_t n, size_t m, facet_candidate *out)
#define SELECT_ARGS g, sorted, n, m, out
#define DIST_PARAMS (const facet_hnsw_graph *g, const float *q, uint32_t slot)
#define DIST_ARGS g, q, slot

DISPATCH(search_g, , size_t, SEARCH_PARAMS, SEARCH_ARGS)
DISPATCH(greedy_g, , uint32_t, GREEDY_PARAMS, GREEDY_ARGS)
DISPATCH(select_g, , size_t, SELECT_PARAMS, SELECT_ARGS)
DISPATCH(dist_g, , float, DIST_PARAMS, DIST_ARGS)
#ifdef FACET_X86
DISPATCH(search_x, AVX, size_t, SEARCH_PARAMS, SEARCH_ARGS)
DISPATCH(greedy_x, AVX, uint32_t, GREEDY_PARAMS, GREEDY_ARGS)
DISPATCH(select_x, AVX, size_t, SELECT_PARAMS, SELECT_ARGS)
DISPATCH(dist_x, AVX, float, DIST_PARAMS, DIST_ARGS)
#endif

#ifdef FACET_X86
#define PICK(NAME, g, CALL)                                                                                    \
    int v_ = (g)->metric * 3 + (g)->vector_kind;                                                                  \
    if (facet_kernels_use_avx2()) switch (v_) {                                                                   \
        case 0: return NAME##_x_l2_f32 CALL; case 3: return NAME##_x_ip_f32 CALL;                                 \
        case 1: return NAME##_x_l2_f16 CALL; case 4: return NAME##_x_ip_f16 CALL;                                 \
        case 2: return NAME##_x_l2_u8 CALL; default: return NAME##_x_ip_u8 CALL; }                                \
    switch (v_) {                                                                                                 \
        case 0: return NAME##_g_l2_f32 CALL; case 3: return NAME##_g_ip_f32 CALL;                                 \
        case 1: return NAME##_g_l2_f16 CALL; case 4: return NAME##_g_ip_f16 CALL;                                 \
        case 2: return NAME##_g_l2_u8 CALL; default: return NAME##_g_ip_u8 CALL; }
#else
#define PICK(NAME, g, CALL)                                                                                    \
    switch ((g)->metric * 3 + (g)->vector_kind) {                                                                 \
        case 0: return NAME##_g_l2_f32 CALL; case 3: return NAME##_g_ip_f32 CALL;                                 \
        case 1: return NAME##_g_l2_f16 CALL; case 4: return NAME##_g_ip_f16 CALL;                                 \
        case 2: return NAME##_g_l2_u8 CALL; default: return NAME##_g_ip_u8 CALL; }
#endif

float facet_hnsw_distance(const facet_hnsw_graph *g, const float *q, uint32_t slot) {
    PICK(dist, g, (DIST_ARGS))
}
uint32_t facet_hnsw_greedy(const facet_hnsw_graph *g, const float *q, uint32_t entry, int top_level, int bottom_level) {
    PICK(greedy, g, (GREEDY_ARGS))
}
size_t facet_hnsw_search_layer(const facet_hnsw_graph *g, const float *q, uint32_t entry, int level, size_t ef,
                               facet_hnsw_scratch *s, facet_accept_fn accept, void *actx) {
    PICK(search, g, (SEARCH_ARGS))
}
size_t facet_hnsw_select(const facet_hnsw_graph *g, const facet_candidate *sorted, size_t n, size_t m, facet_candidate *out) {
    PICK(select, g, (SELECT_ARGS))
}

// MARK: encoding

void facet_hnsw_encode(const facet_hnsw_graph *g, const float *src, void *dst) {
    switch (g->vector_kind) {
    case 0: memcpy(dst, src, g->dim * 4); break;
    case 1: facet_f32_to_f16(src, (uint16_t *)dst, g->dim); break;
    default: {
        uint8_t *c = (uint8_t *)dst;
        for (size_t i = 0; i < g->dim; i++) {
            float s = g->sq_scale[i];
            float x = s > 0 ? (src[i] - g->sq_offset[i]) / s : 0;
            x = x < 0 ? 0 : x > 255 ? 255 : x;
            c[i] = (uint8_t)lrintf(x);
        }
    }
    }
}

// MARK: large allocations

void *facet_alloc_large(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= (2u << 20)) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}
void facet_free_large(void *p, size_t bytes) {
    if (p) munmap(p, bytes == 0 ? 1 : bytes);
}
