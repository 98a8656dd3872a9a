// SIMD kernels of CFacetConv, included twice by conv.c: once inside a target("avx2,fma") region with
// SFX(x) = x##_avx2, once portable with SFX(x) = x##_generic. v8 is a GCC/Clang vector of 8 floats.

static inline __attribute__((always_inline)) v8 SFX(ld)(const float *p) { v8 r; __builtin_memcpy(&r, p, sizeof r); return r; }
static inline __attribute__((always_inline)) void SFX(st)(float *p, v8 v) { __builtin_memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) v8 SFX(splat)(float f) { v8 r = {f, f, f, f, f, f, f, f}; return r; }

static void SFX(winograd_input)(int m, const float *x, int n, int h, int w, int c, long t0, long t1, float *v) {
    const int a = m + 2;
    const int tr = (h + m - 1) / m, tc = (w + m - 1) / m;
    const long tb = t1 - t0;
    const long xs = tb * c;             // stride between tile positions in v
    const v8 zero = SFX(splat)(0);
    (void)n;
    for (long t = t0; t < t1; t++) {
        const long ni = t / (tr * tc);
        const int rem = (int)(t - ni * tr * tc);
        const int ty = rem / tc, tx = rem % tc;
        const int y0 = ty * m - 1, x0 = tx * m - 1;
        const float *rows[6];
        int colok[6];
        for (int i = 0; i < a; i++) {
            int iy = y0 + i;
            rows[i] = (iy >= 0 && iy < h) ? x + ((ni * h + iy) * (long)w) * c : 0;
            int ix = x0 + i;
            colok[i] = ix >= 0 && ix < w;
        }
        float *vt = v + (t - t0) * c;
        for (int c0 = 0; c0 < c; c0 += 8) {
            v8 d[6][6];
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++)
                    d[i][j] = (rows[i] && colok[j]) ? SFX(ld)(rows[i] + (long)(x0 + j) * c + c0) : zero;
            if (m == 4) {
                v8 s[6][6];
                for (int j = 0; j < 6; j++) {   // columns: s = B^T d
                    v8 d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j], d4 = d[4][j], d5 = d[5][j];
                    s[0][j] = 4.0f * d0 - 5.0f * d2 + d4;
                    s[1][j] = (d3 + d4) - 4.0f * (d1 + d2);
                    s[2][j] = (d4 - d3) + 4.0f * (d1 - d2);
                    s[3][j] = (d4 - d2) + 2.0f * (d3 - d1);
                    s[4][j] = (d4 - d2) - 2.0f * (d3 - d1);
                    s[5][j] = 4.0f * d1 - 5.0f * d3 + d5;
                }
                for (int i = 0; i < 6; i++) {   // rows: V = s B
                    v8 d0 = s[i][0], d1 = s[i][1], d2 = s[i][2], d3 = s[i][3], d4 = s[i][4], d5 = s[i][5];
                    float *o = vt + (long)(i * 6) * xs + c0;
                    SFX(st)(o, 4.0f * d0 - 5.0f * d2 + d4);
                    SFX(st)(o + xs, (d3 + d4) - 4.0f * (d1 + d2));
                    SFX(st)(o + 2 * xs, (d4 - d3) + 4.0f * (d1 - d2));
                    SFX(st)(o + 3 * xs, (d4 - d2) + 2.0f * (d3 - d1));
                    SFX(st)(o + 4 * xs, (d4 - d2) - 2.0f * (d3 - d1));
                    SFX(st)(o + 5 * xs, 4.0f * d1 - 5.0f * d3 + d5);
                }
            } else {
                v8 s[4][4];
                for (int j = 0; j < 4; j++) {
                    v8 d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j];
                    s[0][j] = d0 - d2; s[1][j] = d1 + d2; s[2][j] = d2 - d1; s[3][j] = d1 - d3;
                }
                for (int i = 0; i < 4; i++) {
                    v8 d0 = s[i][0], d1 = s[i][1], d2 = s[i][2], d3 = s[i][3];
                    float *o = vt + (long)(i * 4) * xs + c0;
                    SFX(st)(o, d0 - d2);
                    SFX(st)(o + xs, d1 + d2);
                    SFX(st)(o + 2 * xs, d2 - d1);
                    SFX(st)(o + 3 * xs, d1 - d3);
                }
            }
        }
    }
}

static inline __attribute__((always_inline)) v8 SFX(finish)(v8 y, const float *bias, const float *res, int res_c, int relu,
                                                             int k0, long pix) {
    if (bias) y += SFX(ld)(bias + k0);
    if (res && k0 < res_c) y += SFX(ld)(res + pix * res_c + k0);
    if (relu) { y = __builtin_elementwise_max(y, SFX(splat)(0)); }
    return y;
}

static void SFX(winograd_output)(int m, const float *mm, int n, int h, int w, int k, long t0, long t1,
                                 fconv_epilogue ep, float *y) {
    const int tr = (h + m - 1) / m, tc = (w + m - 1) / m;
    const long tb = t1 - t0;
    const long xs = tb * k;
    (void)n;
    for (long t = t0; t < t1; t++) {
        const long ni = t / (tr * tc);
        const int rem = (int)(t - ni * tr * tc);
        const int ty = rem / tc, tx = rem % tc;
        const int oy0 = ty * m, ox0 = tx * m;
        const int my = h - oy0 < m ? h - oy0 : m, mx = w - ox0 < m ? w - ox0 : m;
        const float *mt = mm + (t - t0) * k;
        for (int k0 = 0; k0 < k; k0 += 8) {
            v8 out[4][4];
            if (m == 4) {
                v8 s[4][6];
                for (int j = 0; j < 6; j++) {   // s = A^T M (over the first index)
                    v8 m0 = SFX(ld)(mt + (long)(0 * 6 + j) * xs + k0), m1 = SFX(ld)(mt + (long)(1 * 6 + j) * xs + k0);
                    v8 m2 = SFX(ld)(mt + (long)(2 * 6 + j) * xs + k0), m3 = SFX(ld)(mt + (long)(3 * 6 + j) * xs + k0);
                    v8 m4 = SFX(ld)(mt + (long)(4 * 6 + j) * xs + k0), m5 = SFX(ld)(mt + (long)(5 * 6 + j) * xs + k0);
                    v8 p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
                    s[0][j] = m0 + p12 + p34;
                    s[1][j] = d12 + 2.0f * d34;
                    s[2][j] = p12 + 4.0f * p34;
                    s[3][j] = d12 + 8.0f * d34 + m5;
                }
                for (int i = 0; i < 4; i++) {   // out = s A
                    v8 m0 = s[i][0], m1 = s[i][1], m2 = s[i][2], m3 = s[i][3], m4 = s[i][4], m5 = s[i][5];
                    v8 p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
                    out[i][0] = m0 + p12 + p34;
                    out[i][1] = d12 + 2.0f * d34;
                    out[i][2] = p12 + 4.0f * p34;
                    out[i][3] = d12 + 8.0f * d34 + m5;
                }
            } else {
                v8 s[2][4];
                for (int j = 0; j < 4; j++) {
                    v8 m0 = SFX(ld)(mt + (long)(0 * 4 + j) * xs + k0), m1 = SFX(ld)(mt + (long)(1 * 4 + j) * xs + k0);
                    v8 m2 = SFX(ld)(mt + (long)(2 * 4 + j) * xs + k0), m3 = SFX(ld)(mt + (long)(3 * 4 + j) * xs + k0);
                    s[0][j] = m0 + m1 + m2;
                    s[1][j] = m1 - m2 - m3;
                }
                for (int i = 0; i < 2; i++) {
                    out[i][0] = s[i][0] + s[i][1] + s[i][2];
                    out[i][1] = s[i][1] - s[i][2] - s[i][3];
                }
            }
            for (int i = 0; i < my; i++) {
                for (int j = 0; j < mx; j++) {
                    long pix = (ni * h + oy0 + i) * (long)w + ox0 + j;
                    SFX(st)(y + pix * k + k0, SFX(finish)(out[i][j], ep.bias, ep.res, ep.res_c, ep.relu, k0, pix));
                }
            }
        }
    }
}
