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


// MARK: HNSW hot paths (hnsw.c)

/// A (distance, slot) pair; Swift's `Candidate` is this type.
typedef struct facet_candidate { float distance; uint32_t id; } facet_candidate;

/// Read-only view of an HNSW graph's storage (see HNSWIndex.swift for the layout).
typedef struct facet_hnsw_graph {
    const uint8_t *level0;        ///< level-0 link lists, one per slot: [uint32 count | max_m0 uint32 links]
    size_t stride;                ///< bytes per level-0 link list
    const uint8_t *vectors;       ///< stored vectors, one per slot (a separate array: 64-byte aligned rows
    size_t vector_stride;         ///<   when the row size is a multiple of 64, so a 128-d float row is 8 lines)
    uint32_t *const *upper;       ///< per-slot upper-layer blocks (NULL for level-0-only slots)
    size_t upper_stride;          ///< uint32s per upper-layer list: 1 + max_m
    size_t dim;
    int metric;                   ///< 0: squared L2, 1: 1 - inner product
    int vector_kind;              ///< 0: float32, 1: fp16, 2: int8 codes (see `scale`/`offset`)
    const uint8_t *states;        ///< 1 = live (searchable), 0 = free, 2 = deleted
    const float *sq_scale;        ///< int8 codes: per-dimension scale (value = offset + scale * code)
    const float *sq_offset;       ///< int8 codes: per-dimension offset
} facet_hnsw_graph;

/// Per-search scratch (owned by a Swift SearchContext). Heap buffers are malloc'd and may be realloc'd here.
typedef struct facet_hnsw_scratch {
    uint16_t *visited;
    uint16_t tag;
    facet_candidate *candidates; size_t candidates_capacity;
    facet_candidate *top; size_t top_capacity;
    uint32_t *pending;            ///< at least max_m0 entries
    float *query_buffer;          ///< at least dim floats (the query prepared for the storage kind)
} facet_hnsw_scratch;

/// Optional result filter: return nonzero to admit `slot`.
typedef int (*facet_accept_fn)(void *context, uint32_t slot);

/// Distance from query `q` (prepared for the storage kind) to the vector in `slot`.
float facet_hnsw_distance(const facet_hnsw_graph *g, const float *q, uint32_t slot);
/// Greedy 1-NN descent from `entry` through layers top_level ... bottom_level (inclusive).
uint32_t facet_hnsw_greedy(const facet_hnsw_graph *g, const float *q, uint32_t entry, int top_level, int bottom_level);
/// Best-first search of one layer with a dynamic candidate list of size `ef`. Every reachable node is
/// traversed; only live slots that `accept` admits (all when NULL) enter the result. The result is left in
/// `s->top`, sorted closest first; returns its length. `s->tag` must be fresh for this call.
size_t facet_hnsw_search_layer(const facet_hnsw_graph *g, const float *q, uint32_t entry, int level, size_t ef,
                               facet_hnsw_scratch *s, facet_accept_fn accept, void *accept_context);
/// hnswlib's getNeighborsByHeuristic2 over `sorted` (closest first): keep a candidate only if it is closer to
/// the base point than to every one already kept, up to `m`. Writes to `out`, returns how many.
size_t facet_hnsw_select(const facet_hnsw_graph *g, const facet_candidate *sorted, size_t n, size_t m, facet_candidate *out);
/// The stored vector of `slot` as floats (decoded for fp16 / int8 storage).
void facet_hnsw_decode(const facet_hnsw_graph *g, uint32_t slot, float *out);
/// Encodes a float vector into the storage kind's representation at `dst`.
void facet_hnsw_encode(const facet_hnsw_graph *g, const float *src, void *dst);

/// Large zeroed allocation backed by anonymous mmap, with transparent huge pages requested
/// (fewer TLB misses on random vector access). Free with facet_free_large and the same size.
void *facet_alloc_large(size_t bytes);
void facet_free_large(void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
