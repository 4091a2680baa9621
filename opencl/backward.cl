/*
 * Backward passes. With xhat = (x - mean) * inv (RMS: x * inv) and g = dy * w:
 *   row norms (layer, RMS, group, instance):  dx = inv * (g - mean(g) - xhat * mean(g * xhat))
 *                                             (RMS: no mean(g) term), means over the row;
 *   batch norm, training:   dx = w * inv * (dy - sum(dy)/M - xhat * sum(dy * xhat)/M) per channel;
 *   batch norm, inference:  dx = dy * w * inv (the running statistics are constants);
 *   parameters:             dScale[c] = sum dy * xhat, dBias[c] = sum dy over channel c.
 * The parameter gradients are reductions over the batch and are taken in two stages, per-part
 * partial sums then a fixed-order final pass, never with atomics: the same bits on every run.
 * Sums are compensated (Kahan) so long reductions keep float32 precision.
 */

/* Sums of g = dy * w and g * xhat over one segment, VW lanes at a time (compensated per lane). w is
 * per value when spatial == 1, else constant over runs of `spatial` values (affine aff_base + p / spatial). */
inline void backward_sums_segment(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global param_t *restrict scale, ulong len, ulong aff_base, ulong spatial, int has_scale, acc_t mu,
        acc_t is, accv_t *sg, accv_t *sg_c, accv_t *sgx, accv_t *sgx_c, acc_t *tg, acc_t *tg_c, acc_t *tgx,
        acc_t *tgx_c) {
    for (ulong p0 = 0; p0 < len; p0 += spatial) {
        ulong end = spatial == 1 ? len : min(len, p0 + spatial);
        acc_t ws = has_scale != 0 && spatial != 1 ? LOADP(scale, aff_base + p0 / spatial) : ONE;
        ulong p = p0;
        for (; p + VW <= end; p += VW) {
            accv_t w = has_scale != 0 && spatial == 1 ? LOADPV(scale, aff_base + p) : (accv_t) (ws);
            accv_t g = LOADXV(dy, p) * w;
            kahan_addv(sg, sg_c, g);
            kahan_addv(sgx, sgx_c, g * ((LOADXV(x, p) - mu) * is));
        }
        for (; p < end; p++) {
            acc_t w = has_scale != 0 && spatial == 1 ? LOADP(scale, aff_base + p) : ws;
            acc_t g = LOADX(dy, p) * w;
            kahan_add(tg, tg_c, g);
            kahan_add(tgx, tgx_c, g * ((LOADX(x, p) - mu) * is));
        }
        if (spatial == 1) {
            break;
        }
    }
}

/* dx = is * (dy * w - mean_g - xhat * mean_gx) over one segment; w as in backward_sums_segment. */
inline void backward_dx_segment(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global param_t *restrict scale, __global real_t *restrict dx, ulong len, ulong aff_base,
        ulong spatial, int has_scale, acc_t mu, acc_t is, acc_t mean_g, acc_t mean_gx) {
    for (ulong p0 = 0; p0 < len; p0 += spatial) {
        ulong end = spatial == 1 ? len : min(len, p0 + spatial);
        acc_t ws = has_scale != 0 && spatial != 1 ? LOADP(scale, aff_base + p0 / spatial) : ONE;
        ulong p = p0;
        for (; p + VW <= end; p += VW) {
            accv_t w = has_scale != 0 && spatial == 1 ? LOADPV(scale, aff_base + p) : (accv_t) (ws);
            accv_t xhat = (LOADXV(x, p) - mu) * is;
            STOREXV(dx, p, is * (LOADXV(dy, p) * w - mean_g - xhat * mean_gx));
        }
        for (; p < end; p++) {
            acc_t w = has_scale != 0 && spatial == 1 ? LOADP(scale, aff_base + p) : ws;
            acc_t xhat = (LOADX(x, p) - mu) * is;
            STOREX(dx, p, is * (LOADX(dy, p) * w - mean_g - xhat * mean_gx));
        }
        if (spatial == 1) {
            break;
        }
    }
}

/* A row's mean(g) and mean(g * xhat) over its `segs` segments of `len` values, `seg_stride` apart
 * from `base` (*mean_g is 0 for RMS), with compensated sums per lane: every one-work-item backward
 * kernel's first pass. */
inline void row_backward_means(const __global real_t *dy, const __global real_t *x, const __global param_t *scale,
        ulong base, ulong segs, ulong seg_stride, ulong len, ulong aff_base, ulong spatial, int has_scale, acc_t mu,
        acc_t is, ulong cols, int rms, acc_t *mean_g, acc_t *mean_gx) {
    accv_t sg = (accv_t) (ZERO), sg_c = (accv_t) (ZERO), sgx = (accv_t) (ZERO), sgx_c = (accv_t) (ZERO);
    acc_t tg = ZERO, tg_c = ZERO, tgx = ZERO, tgx_c = ZERO;
    for (ulong i = 0; i < segs; i++) {
        ulong off = base + i * seg_stride;
        backward_sums_segment(dy + off, x + off, scale, len, aff_base, spatial, has_scale, mu, is, &sg, &sg_c, &sgx,
                &sgx_c, &tg, &tg_c, &tgx, &tgx_c);
    }
    acc_t sum_g = (hsum(sg) - hsum(sg_c)) + (tg - tg_c);
    acc_t sum_gx = (hsum(sgx) - hsum(sgx_c)) + (tgx - tgx_c);
    *mean_g = rms != 0 ? ZERO : sum_g / (acc_t) cols;
    *mean_gx = sum_gx / (acc_t) cols;
}

/* dX of one row whose first value is at `base` and whose affine entries start at group g:
 * row_backward_serial's work, and row_backward_rows' for rows that do not fill a block of lanes. */
__attribute__((always_inline)) inline void row_backward_one(const __global real_t *dy, const __global real_t *x,
        const __global param_t *scale,
        const __global acc_t *mean, const __global acc_t *inv, __global real_t *dx, ulong row, ulong base, ulong g,
        ulong cols, ulong cpg, ulong spatial, ulong segs, ulong seg_stride, int rms, int has_scale) {
    ulong len = cols / segs;
    ulong aff_base = g * cpg;
    acc_t mu = rms != 0 ? ZERO : mean[row];
    acc_t is = inv[row];
    acc_t mean_g, mean_gx;
    row_backward_means(dy, x, scale, base, segs, seg_stride, len, aff_base, spatial, has_scale, mu, is, cols, rms,
            &mean_g, &mean_gx);
    for (ulong i = 0; i < segs; i++) {
        ulong off = base + i * seg_stride;
        backward_dx_segment(dy + off, x + off, scale, dx + off, len, aff_base, spatial, has_scale, mu, is, mean_g,
                mean_gx);
    }
}

/* One work-item per row, walking its segments (see row_layout). */
__kernel void row_backward_serial(const __global real_t *dy, const __global real_t *x,
        const __global param_t *scale, const __global acc_t *mean, const __global acc_t *inv, __global real_t *dx,
        ROW_LAYOUT_ARGS, int rms, int has_scale) {
    ulong row = get_global_id(0);
    if (row >= rows) {
        return;
    }
    const row_layout l = ROW_LAYOUT_INIT;
    row_backward_one(dy, x, scale, mean, inv, dx, row, row_base(&l, row), row_group(&l, row), cols, cpg, spatial, segs,
            seg_stride, rms, has_scale);
}

/* A row block's compensated per-column sums of dy * xhat and dy (affine_grad_rows,
 * row_backward_affine_rows): its own slice of `acc`, channels x {sdx, sdx_c, sd, sd_c}, zeroed first
 * and stored to partials[(c * parts + part) * 2 + {0, 1}] last. */
inline __global acc_t *col_sums_start(__global acc_t *acc, ulong part, ulong channels) {
    __global acc_t *a = acc + part * channels * 4;
    for (ulong i = 0; i < channels * 4; i++) {
        a[i] = ZERO;
    }
    return a;
}

/* The sums of the VW columns from c, loaded from `a`, added to, and stored back. */
typedef struct {
    accv_t sdx, sdx_c, sd, sd_c;
} col_sums_v;

inline col_sums_v col_sums_loadv(const __global acc_t *a, ulong channels, ulong c) {
    col_sums_v v = {VLOAD(0, a + c), VLOAD(0, a + channels + c), VLOAD(0, a + 2 * channels + c),
            VLOAD(0, a + 3 * channels + c)};
    return v;
}

/* Adds one row's dy (d) and dy * xhat (dxh). */
inline void col_sums_termsv(col_sums_v *v, accv_t d, accv_t dxh) {
    kahan_addv(&v->sd, &v->sd_c, d);
    kahan_addv(&v->sdx, &v->sdx_c, dxh);
}

inline void col_sums_storev(__global acc_t *a, ulong channels, ulong c, const col_sums_v *v) {
    VSTORE(v->sdx, 0, a + c);
    VSTORE(v->sdx_c, 0, a + channels + c);
    VSTORE(v->sd, 0, a + 2 * channels + c);
    VSTORE(v->sd_c, 0, a + 3 * channels + c);
}

/* Adds dy (d) and dy * xhat (dxh) of the VW columns from c. */
inline void col_sums_addv(__global acc_t *a, ulong channels, ulong c, accv_t d, accv_t dxh) {
    col_sums_v v = col_sums_loadv(a, channels, c);
    col_sums_termsv(&v, d, dxh);
    col_sums_storev(a, channels, c, &v);
}

/* Adds dy (d) and dy * xhat (dxh) of column c. */
inline void col_sums_add(__global acc_t *a, ulong channels, ulong c, acc_t d, acc_t dxh) {
    acc_t sdx = a[c], sdx_c = a[channels + c], sd = a[2 * channels + c], sd_c = a[3 * channels + c];
    kahan_add(&sd, &sd_c, d);
    kahan_add(&sdx, &sdx_c, dxh);
    a[c] = sdx;
    a[channels + c] = sdx_c;
    a[2 * channels + c] = sd;
    a[3 * channels + c] = sd_c;
}

inline void col_sums_store(const __global acc_t *a, __global acc_t *partials, ulong channels, ulong part,
        ulong parts) {
    for (ulong c = 0; c < channels; c++) {
        ulong q = c * parts + part;
        partials[q * 2 + 0] = a[c] - a[channels + c];
        partials[q * 2 + 1] = a[2 * channels + c] - a[3 * channels + c];
    }
}

/*
 * row_backward_one for VW rows of cols < VW values, one row per lane, as row_norm_lanes does the
 * forward pass (its layout, `aff`, `together` and `pow2`): row_backward_means' scalar loops
 * (compensated sums in the order of the values) and backward_dx_segment's, lane by lane, so the
 * bits of row_backward_serial. The terms g = dy * w and g * xhat, and dX, are computed on the block
 * as it lies where the row length is constant and the affine entries run on, else lane by lane.
 */
__attribute__((always_inline)) inline void row_backward_lanes(const __global real_t *dy, const __global real_t *x,
        const __global param_t *scale, const __global acc_t *mean, const __global acc_t *inv, __global real_t *dx,
        ulong r, ulong cols, ulong spatial, ulong *aff, const bool together, int rms, int has_scale, const bool pow2,
        const bool sums, __global acc_t *a, ulong channels, ulong c0) {
    const accv_t zero = (accv_t) (ZERO);
    const acc_t n = (acc_t) cols;
    acc_t xbuf[VW * (VW - 1)], dbuf[VW * (VW - 1)]; /* the block of rows of X and dY, as in memory */
    const ulong b0 = r * cols;
    for (ulong q = 0; q < cols; q++) {
        VSTORE(LOADXV(x, b0 + q * VW), 0, xbuf + q * VW);
        VSTORE(LOADXV(dy, b0 + q * VW), 0, dbuf + q * VW);
    }
    accv_t mu = rms != 0 ? zero : VLOAD(0, mean + r);
    accv_t is = VLOAD(0, inv + r);
    acc_t mus[VW], iss[VW];
    VSTORE(mu, 0, mus);
    VSTORE(is, 0, iss);
    const bool natural = together && pow2;
    if (!natural && together) {
        for (uint j = 1; j < VW; j++) {
            aff[j] = aff[0] + j * cols;
        }
    }
    accv_t tg = zero, tg_c = zero, tgx = zero, tgx_c = zero;
    if (natural) {
        acc_t gbuf[VW * (VW - 1)], hbuf[VW * (VW - 1)];
        for (ulong q = 0; q < cols; q++) {
            accv_t w = has_scale != 0 ? LOADPV(scale, aff[0] + q * VW) : (accv_t) (ONE);
            accv_t g = VLOAD(0, dbuf + q * VW) * w;
            VSTORE(g, 0, gbuf + q * VW);
            VSTORE(g * ((VLOAD(0, xbuf + q * VW) - lane_expand(mus, q, cols)) * lane_expand(iss, q, cols)), 0,
                    hbuf + q * VW);
        }
        for (ulong t = 0; t < cols; t++) {
            kahan_addv(&tg, &tg_c, lane_gather_private(gbuf + t, cols));
            kahan_addv(&tgx, &tgx_c, lane_gather_private(hbuf + t, cols));
        }
    } else {
        for (ulong t = 0; t < cols; t++) {
            accv_t w = has_scale != 0 ? lane_gather_param(scale, aff, t / spatial) : (accv_t) (ONE);
            accv_t g = lane_gather_private(dbuf + t, cols) * w;
            kahan_addv(&tg, &tg_c, g);
            kahan_addv(&tgx, &tgx_c, g * ((lane_gather_private(xbuf + t, cols) - mu) * is));
        }
    }
    /* as row_backward_means totals them: its vector sums are all zero here */
    accv_t mean_g = rms != 0 ? zero : (zero + (tg - tg_c)) / n;
    accv_t mean_gx = (zero + (tgx - tgx_c)) / n;
    if (natural) {
        acc_t mgs[VW], mgxs[VW];
        VSTORE(mean_g, 0, mgs);
        VSTORE(mean_gx, 0, mgxs);
        for (ulong q = 0; q < cols; q++) {
            accv_t w = has_scale != 0 ? LOADPV(scale, aff[0] + q * VW) : (accv_t) (ONE);
            accv_t isq = lane_expand(iss, q, cols);
            accv_t xhat = (VLOAD(0, xbuf + q * VW) - lane_expand(mus, q, cols)) * isq;
            accv_t d = VLOAD(0, dbuf + q * VW);
            STOREXV(dx, b0 + q * VW, isq * (d * w - lane_expand(mgs, q, cols) - xhat * lane_expand(mgxs, q, cols)));
            if (sums) { /* affine_grad_rows' terms of these columns: dy, dy * ((x - mean) * inv) */
                col_sums_addv(a, channels, c0 + q * VW, d, d * xhat);
            }
        }
        return;
    }
    if (sums) { /* before xbuf takes dX: affine_grad_rows' terms, column by column as the block lies */
        for (ulong i = 0; i < VW * cols; i++) {
            acc_t d = dbuf[i];
            col_sums_add(a, channels, c0 + i, d, d * ((xbuf[i] - mus[i / cols]) * iss[i / cols]));
        }
    }
    for (ulong t = 0; t < cols; t++) {
        accv_t w = has_scale != 0 ? lane_gather_param(scale, aff, t / spatial) : (accv_t) (ONE);
        accv_t xhat = (lane_gather_private(xbuf + t, cols) - mu) * is;
        lane_scatter_private(xbuf + t, cols, is * (lane_gather_private(dbuf + t, cols) * w - mean_g - xhat * mean_gx));
    }
    for (ulong q = 0; q < cols; q++) {
        STOREXV(dx, b0 + q * VW, VLOAD(0, xbuf + q * VW));
    }
}

/*
 * row_backward_one for VW rows of exactly VW values (spatial 1), rows r .. r + VW - 1, as
 * row_norm_lanes_wide does the forward pass: each row's terms g = dy * w and g * xhat are formed
 * as row_backward_one's single vector step forms them, then taken apart into lanes (value t of
 * every row in one vector), where backward_sums_segment's compensated step from zero and hsum's
 * tree (hsum_across) run for VW rows at once; dX is written row by row with backward_dx_segment's
 * expression. The same operations in the same order, so the bits of row_backward_serial. With
 * `sums`, each row's dy and dy * xhat also go to the column sums `a` (columns c0 + q * VW, row q),
 * as row_backward_affine_groups adds them. aff and together: see lane_groups.
 */
__attribute__((always_inline)) inline void row_backward_lanes_wide(const __global real_t *dy,
        const __global real_t *x, const __global param_t *scale, const __global acc_t *mean,
        const __global acc_t *inv, __global real_t *dx, ulong r, const ulong *aff, const bool together, int rms,
        int has_scale, const bool sums, __global acc_t *a, ulong channels, ulong c0) {
    const accv_t zero = (accv_t) (ZERO);
    const acc_t n = (acc_t) VW;
    acc_t mus[VW], iss[VW];
    VSTORE(rms != 0 ? zero : VLOAD(0, mean + r), 0, mus);
    VSTORE(VLOAD(0, inv + r), 0, iss);
    acc_t gbuf[VW * VW], hbuf[VW * VW]; /* row q's terms at q * VW, as in memory */
    for (uint q = 0; q < VW; q++) {
        const ulong off = (r + q) * VW;
        accv_t w = has_scale != 0 ? LOADPV(scale, together ? aff[0] + q * VW : aff[q]) : (accv_t) (ONE);
        accv_t g = LOADXV(dy, off) * w;
        VSTORE(g, 0, gbuf + q * VW);
        VSTORE(g * ((LOADXV(x, off) - mus[q]) * iss[q]), 0, hbuf + q * VW);
    }
    accv_t s[VW], c[VW];
    for (uint t = 0; t < VW; t++) {
        s[t] = zero;
        c[t] = zero;
        kahan_addv(&s[t], &c[t], lane_gather_private(gbuf + t, VW));
    }
    accv_t sum_g = (hsum_across(s) - hsum_across(c)) + (zero - zero); /* row_backward_means' total */
    for (uint t = 0; t < VW; t++) {
        s[t] = zero;
        c[t] = zero;
        kahan_addv(&s[t], &c[t], lane_gather_private(hbuf + t, VW));
    }
    accv_t sum_gx = (hsum_across(s) - hsum_across(c)) + (zero - zero);
    acc_t mgs[VW], mgxs[VW];
    VSTORE(rms != 0 ? zero : sum_g / n, 0, mgs);
    VSTORE(sum_gx / n, 0, mgxs);
    for (uint q = 0; q < VW; q++) {
        const ulong off = (r + q) * VW;
        accv_t w = has_scale != 0 ? LOADPV(scale, together ? aff[0] + q * VW : aff[q]) : (accv_t) (ONE);
        accv_t d = LOADXV(dy, off);
        accv_t xhat = (LOADXV(x, off) - mus[q]) * iss[q];
        STOREXV(dx, off, iss[q] * (d * w - mgs[q] - xhat * mgxs[q]));
        if (sums) {
            col_sums_addv(a, channels, c0 + q * VW, d, d * xhat);
        }
    }
}

/*
 * Short contiguous rows on the one-work-item family (CPU), as row_norm_rows: a block of
 * rows_per_item rows per work-item, VW at a time in lanes when rows are shorter than VW
 * (row_backward_lanes), the rest one at a time (row_backward_one). dX has the bits of
 * row_backward_serial.
 */
__kernel void row_backward_rows(const __global real_t *dy, const __global real_t *x, const __global param_t *scale,
        const __global acc_t *mean, const __global acc_t *inv, __global real_t *dx, ulong rows, ulong cols,
        ulong groups, ulong cpg, ulong spatial, ulong rows_per_item, int rms, int has_scale) {
#define BACKWARD_LANES(len, pow2) \
    row_backward_lanes(dy, x, scale, mean, inv, dx, r, len, spatial, aff, together, rms, has_scale, pow2, false, 0, 0, 0)
#define BACKWARD_ONE(len) row_backward_one(dy, x, scale, mean, inv, dx, r, r * (len), g, (len), cpg, spatial, 1, \
        (len), rms, has_scale)
#define BACKWARD_WIDE \
    row_backward_lanes_wide(dy, x, scale, mean, inv, dx, r, aff, together, rms, has_scale, false, 0, 0, 0)
    FOR_ROW_BLOCK(BACKWARD_LANES, BACKWARD_WIDE, BACKWARD_ONE);
#undef BACKWARD_LANES
#undef BACKWARD_WIDE
#undef BACKWARD_ONE
}

/* One work-group per row; local memory: two arrays of get_local_size(0) acc_t (power of two). */
__kernel void row_backward_group(const __global real_t *dy, const __global real_t *x,
        const __global param_t *scale, const __global acc_t *mean, const __global acc_t *inv, __global real_t *dx,
        ROW_LAYOUT_ARGS, int rms, int has_scale, __local acc_t *la, __local acc_t *lb) {
    ulong row = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    const row_layout l = ROW_LAYOUT_INIT;
    ulong base = row_base(&l, row);
    acc_t mu = rms != 0 ? ZERO : mean[row];
    acc_t is = inv[row];
    acc_t sg = ZERO, sg_c = ZERO, sgx = ZERO, sgx_c = ZERO;
    for (ulong t = lid; t < cols; t += wg) {
        ulong i = row_offset(&l, base, t);
        acc_t w = has_scale != 0 ? LOADP(scale, row_affine(&l, row, t)) : ONE;
        acc_t g = LOADX(dy, i) * w;
        kahan_add(&sg, &sg_c, g);
        kahan_add(&sgx, &sgx_c, g * ((LOADX(x, i) - mu) * is));
    }
    sum2_reduce_local(la, lb, lid, wg, sg, sgx);
    acc_t mean_g = rms != 0 ? ZERO : la[0] / (acc_t) cols;
    acc_t mean_gx = lb[0] / (acc_t) cols;
    for (ulong t = lid; t < cols; t += wg) {
        ulong i = row_offset(&l, base, t);
        acc_t w = has_scale != 0 ? LOADP(scale, row_affine(&l, row, t)) : ONE;
        acc_t xhat = (LOADX(x, i) - mu) * is;
        STOREX(dx, i, is * (LOADX(dy, i) * w - mean_g - xhat * mean_gx));
    }
}

/* The statistic index of (outer index o, channel c); see AffineGradPlan. */
#define STAT_INDEX(o, c) (((o) / outer_per_stat) * stats_per_outer + (c) / channels_per_stat)
#define AFFINE_GRAD_ARGS ulong stats_per_outer, ulong channels_per_stat, ulong outer_per_stat, int rms

/* Stage 1 for inner == 1 (columns of an (outer, channels) matrix: layer/RMS norm, channels-last
 * tensors). NDRange (channels, parts): work-item (c, part) sums column c over its block of outer
 * indices; neighbouring work-items read neighbouring addresses. */
__kernel void affine_grad_cols(const __global real_t *dy, const __global real_t *x, const __global acc_t *mean,
        const __global acc_t *inv, __global acc_t *partials, ulong outer, ulong channels, ulong parts,
        AFFINE_GRAD_ARGS) {
    ulong c = get_global_id(0);
    ulong part = get_global_id(1);
    if (c >= channels) {
        return;
    }
    ulong o0 = outer * part / parts;
    ulong o1 = outer * (part + 1) / parts;
    acc_t sd = ZERO, sd_c = ZERO, sdx = ZERO, sdx_c = ZERO;
    for (ulong o = o0; o < o1; o++) {
        ulong si = STAT_INDEX(o, c);
        acc_t mu = rms != 0 ? ZERO : mean[si];
        ulong i = o * channels + c;
        acc_t d = LOADX(dy, i);
        kahan_add(&sd, &sd_c, d);
        kahan_add(&sdx, &sdx_c, d * ((LOADX(x, i) - mu) * inv[si]));
    }
    ulong t = c * parts + part;
    partials[t * 2 + 0] = sdx;
    partials[t * 2 + 1] = sd;
}

/* Lane j: s[j / per], the statistics of VW columns in runs of `per` (a divisor of VW) each; the
 * common run lengths constant, so that this is a load and a shuffle. */
__attribute__((always_inline)) inline accv_t lane_runs(const __global acc_t *s, ulong per) {
#define LANE_RUN(j, c) s[(j) / per]
    return (accv_t) (LANES(LANE_RUN));
#undef LANE_RUN
}

inline accv_t stat_lanes(const __global acc_t *s, ulong per) {
    switch (per) {
    case 2:
        return lane_runs(s, 2);
    case 4:
        return lane_runs(s, 4);
    case 8:
        return lane_runs(s, 8);
    default:
        return lane_runs(s, per);
    }
}

/* Stage 1 for inner == 1 on one-work-item kernels (CPU): a work-item takes a block of rows and
 * walks them row by row, VW columns at a time, so dY and X stream contiguously (a work-item per
 * column, as in affine_grad_cols, strides a page per row on a CPU). Its per-column compensated
 * sums live in its own slice of `acc` (channels x {sdx, sdx_c, sd, sd_c}, cache resident), and go
 * to partials[(c * parts + part) * 2] at the end. Statistics of a vector of columns: one per row
 * (channels_per_stat >= channels: layer/RMS norm), one per column (channels_per_stat == 1:
 * channels-last batch and instance norm, a vector load), else gathered lane by lane. */
__kernel void affine_grad_rows(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global acc_t *restrict mean, const __global acc_t *restrict inv, __global acc_t *restrict acc,
        __global acc_t *restrict partials, ulong outer, ulong channels, ulong parts, AFFINE_GRAD_ARGS) {
    ulong part = get_global_id(0);
    if (part >= parts) {
        return;
    }
    ulong o0 = outer * part / parts;
    ulong o1 = outer * (part + 1) / parts;
    __global acc_t *a = col_sums_start(acc, part, channels);
    const bool per_row = channels_per_stat >= channels;
    const bool per_column = channels_per_stat == 1;
    const bool runs = VW % channels_per_stat == 0; /* a vector of columns: VW / channels_per_stat runs */
    const bool whole = channels_per_stat % VW == 0; /* a vector of columns: one statistic */
    for (ulong o = o0; o < o1; o++) {
        ulong stat_base = (o / outer_per_stat) * stats_per_outer;
        acc_t mu_row = rms != 0 || !per_row ? ZERO : mean[stat_base];
        acc_t is_row = per_row ? inv[stat_base] : ZERO;
        const __global real_t *dyr = dy + o * channels;
        const __global real_t *xr = x + o * channels;
        ulong c = 0;
        ulong stat = 0, in_stat = 0; /* c / channels_per_stat and c % channels_per_stat, walked */
        for (; c + VW <= channels; c += VW) {
            accv_t muv, isv;
            if (per_row) {
                muv = (accv_t) (mu_row);
                isv = (accv_t) (is_row);
            } else if (per_column) {
                muv = rms != 0 ? (accv_t) (ZERO) : VLOAD(0, mean + stat_base + c);
                isv = VLOAD(0, inv + stat_base + c);
            } else if (runs) {
                muv = rms != 0 ? (accv_t) (ZERO) : stat_lanes(mean + stat_base + stat, channels_per_stat);
                isv = stat_lanes(inv + stat_base + stat, channels_per_stat);
                stat += VW / channels_per_stat;
            } else if (whole) {
                muv = (accv_t) (rms != 0 ? ZERO : mean[stat_base + stat]);
                isv = (accv_t) (inv[stat_base + stat]);
                in_stat += VW;
                if (in_stat == channels_per_stat) {
                    in_stat = 0;
                    stat++;
                }
            } else {
                acc_t mu_l[VW], is_l[VW];
                for (uint j = 0; j < VW; j++) {
                    ulong si = stat_base + stat;
                    mu_l[j] = rms != 0 ? ZERO : mean[si];
                    is_l[j] = inv[si];
                    if (++in_stat == channels_per_stat) {
                        in_stat = 0;
                        stat++;
                    }
                }
                muv = VLOAD(0, mu_l);
                isv = VLOAD(0, is_l);
            }
            accv_t d = LOADXV(dyr, c);
            col_sums_addv(a, channels, c, d, d * ((LOADXV(xr, c) - muv) * isv));
        }
        for (; c < channels; c++) {
            ulong si = stat_base + c / channels_per_stat;
            acc_t mu = rms != 0 ? ZERO : mean[si];
            acc_t d = LOADX(dyr, c);
            col_sums_add(a, channels, c, d, d * ((LOADX(xr, c) - mu) * inv[si]));
        }
    }
    col_sums_store(a, partials, channels, part, parts);
}

/* col_sums_addv for two rows at one load and one store of the sums: row a's terms, then row b's. */
inline void col_sums_add2v(__global acc_t *a, ulong channels, ulong c, accv_t da, accv_t dxha, accv_t db,
        accv_t dxhb) {
    col_sums_v v = col_sums_loadv(a, channels, c);
    col_sums_termsv(&v, da, dxha);
    col_sums_termsv(&v, db, dxhb);
    col_sums_storev(a, channels, c, &v);
}

/* Column c of one row of row_backward_affine_rows: its dX, and its terms added to the sums. */
inline void row_backward_affine_col(const __global real_t *dyr, const __global real_t *xr, __global real_t *dxr,
        const __global param_t *scale, int has_scale, __global acc_t *a, ulong cols, ulong c, acc_t mu, acc_t is,
        acc_t mean_g, acc_t mean_gx) {
    acc_t w = has_scale != 0 ? LOADP(scale, c) : ONE;
    acc_t d = LOADX(dyr, c);
    acc_t xhat = (LOADX(xr, c) - mu) * is;
    STOREX(dxr, c, is * (d * w - mean_g - xhat * mean_gx));
    col_sums_add(a, cols, c, d, d * xhat);
}

/*
 * Layer and RMS norm backward fused with their parameter gradients, on the one-work-item family
 * (CPU), for contiguous rows with one statistic each: a work-item takes affine_grad_rows' block of
 * rows and, two rows at a time, takes row_backward_serial's sums of each (dY and X from memory)
 * and, in a loop over the two rows that also takes the next pair's sums, writes dX and adds dy and
 * dy * xhat to its compensated per-column sums, row by row, with one load and one store of the sums
 * for both
 * (for rows of 65536 values the sums, 16 bytes a column, do not stay in L2, and their traffic was
 * twice the data's). The operations and their order are those of row_backward_serial (dX) and
 * affine_grad_rows (the partials), so dScale and dBias keep their bits; dY and X are read from
 * memory once instead of twice. `acc` and `partials` as in affine_grad_rows.
 */
__kernel void row_backward_affine_rows(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global param_t *restrict scale, const __global acc_t *restrict mean,
        const __global acc_t *restrict inv, __global real_t *restrict dx, __global acc_t *restrict acc,
        __global acc_t *restrict partials, ulong rows, ulong cols, ulong parts, int rms, int has_scale) {
    ulong part = get_global_id(0);
    if (part >= parts) {
        return;
    }
    ulong o0 = rows * part / parts;
    ulong o1 = rows * (part + 1) / parts;
    __global acc_t *a = col_sums_start(acc, part, cols);
    // Pairs of rows as a software pipeline: the loop over the columns that writes pair t's dX and
    // adds its terms to the column sums (dY and X from cache) also takes pair t + 1's sums, in
    // row_backward_means' order (dY and X from memory), so memory streams while pair t's arithmetic
    // runs. The sums of pair 0 come first, on their own.
    ulong pairs = (o1 - o0) / 2;
    acc_t mean_ga = ZERO, mean_gxa = ZERO, mean_gb = ZERO, mean_gxb = ZERO;
    if (pairs > 0) {
        row_backward_means(dy, x, scale, o0 * cols, 1, 0, cols, 0, 1, has_scale, rms != 0 ? ZERO : mean[o0],
                inv[o0], cols, rms, &mean_ga, &mean_gxa);
        row_backward_means(dy, x, scale, (o0 + 1) * cols, 1, 0, cols, 0, 1, has_scale,
                rms != 0 ? ZERO : mean[o0 + 1], inv[o0 + 1], cols, rms, &mean_gb, &mean_gxb);
    }
    ulong o = o0;
    for (ulong t = 0; t < pairs; t++, o += 2) {
        const __global real_t *dya = dy + o * cols;
        const __global real_t *xa = x + o * cols;
        __global real_t *dxa = dx + o * cols;
        const __global real_t *dyb = dya + cols;
        const __global real_t *xb = xa + cols;
        __global real_t *dxb = dxa + cols;
        acc_t mua = rms != 0 ? ZERO : mean[o];
        acc_t isa = inv[o];
        acc_t mub = rms != 0 ? ZERO : mean[o + 1];
        acc_t isb = inv[o + 1];
        // The next pair (rows n and n + 1), whose sums this loop takes.
        const bool next = t + 1 < pairs;
        const ulong n = next ? o + 2 : o;
        const __global real_t *dyn = dy + n * cols;
        const __global real_t *xn = x + n * cols;
        const __global real_t *dym = dyn + cols;
        const __global real_t *xm = xn + cols;
        acc_t mun = next && rms == 0 ? mean[n] : ZERO;
        acc_t isn = next ? inv[n] : ZERO;
        acc_t mum = next && rms == 0 ? mean[n + 1] : ZERO;
        acc_t ism = next ? inv[n + 1] : ZERO;
        accv_t sgn = (accv_t) (ZERO), sgn_c = sgn, sgxn = sgn, sgxn_c = sgn;
        accv_t sgm = sgn, sgm_c = sgn, sgxm = sgn, sgxm_c = sgn;
        ulong c = 0;
        for (; c + VW <= cols; c += VW) {
            accv_t w = has_scale != 0 ? LOADPV(scale, c) : (accv_t) (ONE);
            if (next) {
                accv_t gn = LOADXV(dyn, c) * w;
                kahan_addv(&sgn, &sgn_c, gn);
                kahan_addv(&sgxn, &sgxn_c, gn * ((LOADXV(xn, c) - mun) * isn));
                accv_t gm = LOADXV(dym, c) * w;
                kahan_addv(&sgm, &sgm_c, gm);
                kahan_addv(&sgxm, &sgxm_c, gm * ((LOADXV(xm, c) - mum) * ism));
            }
            accv_t da = LOADXV(dya, c);
            accv_t xhata = (LOADXV(xa, c) - mua) * isa;
            STOREXV(dxa, c, isa * (da * w - mean_ga - xhata * mean_gxa));
            accv_t db = LOADXV(dyb, c);
            accv_t xhatb = (LOADXV(xb, c) - mub) * isb;
            STOREXV(dxb, c, isb * (db * w - mean_gb - xhatb * mean_gxb));
            col_sums_add2v(a, cols, c, da, da * xhata, db, db * xhatb);
        }
        acc_t tgn = ZERO, tgn_c = ZERO, tgxn = ZERO, tgxn_c = ZERO;
        acc_t tgm = ZERO, tgm_c = ZERO, tgxm = ZERO, tgxm_c = ZERO;
        for (; c < cols; c++) {
            if (next) {
                acc_t w = has_scale != 0 ? LOADP(scale, c) : ONE;
                acc_t gn = LOADX(dyn, c) * w;
                kahan_add(&tgn, &tgn_c, gn);
                kahan_add(&tgxn, &tgxn_c, gn * ((LOADX(xn, c) - mun) * isn));
                acc_t gm = LOADX(dym, c) * w;
                kahan_add(&tgm, &tgm_c, gm);
                kahan_add(&tgxm, &tgxm_c, gm * ((LOADX(xm, c) - mum) * ism));
            }
            row_backward_affine_col(dya, xa, dxa, scale, has_scale, a, cols, c, mua, isa, mean_ga, mean_gxa);
            row_backward_affine_col(dyb, xb, dxb, scale, has_scale, a, cols, c, mub, isb, mean_gb, mean_gxb);
        }
        if (next) { // as row_backward_means finishes its sums
            acc_t sum_gn = (hsum(sgn) - hsum(sgn_c)) + (tgn - tgn_c);
            acc_t sum_gxn = (hsum(sgxn) - hsum(sgxn_c)) + (tgxn - tgxn_c);
            acc_t sum_gm = (hsum(sgm) - hsum(sgm_c)) + (tgm - tgm_c);
            acc_t sum_gxm = (hsum(sgxm) - hsum(sgxm_c)) + (tgxm - tgxm_c);
            mean_ga = rms != 0 ? ZERO : sum_gn / (acc_t) cols;
            mean_gxa = sum_gxn / (acc_t) cols;
            mean_gb = rms != 0 ? ZERO : sum_gm / (acc_t) cols;
            mean_gxb = sum_gxm / (acc_t) cols;
        }
    }
    if (o < o1) {
        const __global real_t *dyr = dy + o * cols;
        const __global real_t *xr = x + o * cols;
        __global real_t *dxr = dx + o * cols;
        acc_t mu = rms != 0 ? ZERO : mean[o];
        acc_t is = inv[o];
        acc_t mean_g, mean_gx;
        row_backward_means(dy, x, scale, o * cols, 1, 0, cols, 0, 1, has_scale, mu, is, cols, rms, &mean_g,
                &mean_gx);
        ulong c = 0;
        for (; c + VW <= cols; c += VW) {
            accv_t w = has_scale != 0 ? LOADPV(scale, c) : (accv_t) (ONE);
            accv_t d = LOADXV(dyr, c);
            accv_t xhat = (LOADXV(xr, c) - mu) * is;
            STOREXV(dxr, c, is * (d * w - mean_g - xhat * mean_gx));
            col_sums_addv(a, cols, c, d, d * xhat);
        }
        for (; c < cols; c++) {
            row_backward_affine_col(dyr, xr, dxr, scale, has_scale, a, cols, c, mu, is, mean_g, mean_gx);
        }
    }
    col_sums_store(a, partials, cols, part, parts);
}

/* The groups of sample o of row_backward_affine_groups, cpg values each (a constant where the caller can). */
#define GROUP_SAMPLES(cpg) \
    for (ulong o = o0; o < o1; o++) { \
        const __global real_t *dyr = dy + o * channels; \
        const __global real_t *xr = x + o * channels; \
        for (ulong g = 0; g < groups; g++) { \
            GROUP_ROW(cpg); \
        } \
    }

/* Group g of sample o (dyr, xr: the sample's dY and X) of row_backward_affine_groups, one row. */
#define GROUP_ROW(cpg) \
    { \
        ulong row = o * groups + g; \
        ulong c0 = g * (cpg); \
        row_backward_one(dy, x, scale, mean, inv, dx, row, row * (cpg), g, (cpg), (cpg), 1, 1, (cpg), 0, has_scale); \
        const acc_t mu = mean[row]; \
        const acc_t is = inv[row]; \
        ulong c = c0; \
        for (; c + VW <= c0 + (cpg); c += VW) { \
            accv_t d = LOADXV(dyr, c); \
            col_sums_addv(a, channels, c, d, d * ((LOADXV(xr, c) - (accv_t) (mu)) * (accv_t) (is))); \
        } \
        for (; c < c0 + (cpg); c++) { \
            acc_t d = LOADX(dyr, c); \
            col_sums_add(a, channels, c, d, d * ((LOADX(xr, c) - mu) * is)); \
        } \
    }

/* VW groups of sample o of row_backward_affine_groups from group b, rows r.., of cpg < VW values each. */
#define GROUP_LANES(cpg, pow2) \
    row_backward_lanes(dy, x, scale, mean, inv, dx, r, (cpg), 1, aff, together, 0, has_scale, pow2, true, a, \
            channels, b * (cpg))

/*
 * Group norm of (N, C) data (rows of cpg = C / G consecutive channels, one statistic each)
 * backward fused with its per-channel parameter gradients, on the one-work-item family (CPU): a
 * work-item takes affine_grad_rows' block of samples and, group by group, writes the group's dX
 * (row_backward_one: its sums with dY and X from memory, then dX from cache) and adds dy and
 * dy * xhat of the group's channels to its compensated per-column sums (affine_grad_rows' terms,
 * sample by sample as there). The same operations in the same order as row_backward_rows followed
 * by affine_grad_rows, so the same bits, with dY and X read from memory once instead of twice
 * (PoCL, Zen 5, 2026-11-28: 32 groups of 8192x1024 5.2-7.3 -> 3.9-4.4 ms, of 16384x512 9.1-9.5 ->
 * 4.3-4.4 ms). Rows shorter than VW (groups a multiple of VW) go VW groups at a time through
 * row_backward_lanes, which adds the same terms to the column sums from its block in private
 * memory; rows of exactly VW values through row_backward_lanes_wide, VW groups of a sample at a
 * time and the groups past the last whole block one at a time. `acc` and `partials` as in
 * affine_grad_rows.
 */
__kernel void row_backward_affine_groups(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global param_t *restrict scale, const __global acc_t *restrict mean,
        const __global acc_t *restrict inv, __global real_t *restrict dx, __global acc_t *restrict acc,
        __global acc_t *restrict partials, ulong outer, ulong channels, ulong groups, ulong parts, int has_scale) {
    ulong part = get_global_id(0);
    if (part >= parts) {
        return;
    }
    ulong o0 = outer * part / parts;
    ulong o1 = outer * (part + 1) / parts;
    __global acc_t *a = col_sums_start(acc, part, channels);
    ulong per_group = channels / groups;
    if (per_group < VW) { /* groups a multiple of VW (ClBackend): VW groups of a sample at a time in the lanes */
        for (ulong o = o0; o < o1; o++) {
            ulong g = 0;
            for (ulong b = 0; b < groups; b += VW) {
                ulong aff[VW];
                const bool together = lane_groups(aff, &g, groups, per_group, 1);
                ulong r = o * groups + b;
                switch (per_group) {
                case 1: GROUP_LANES(1, true); break;
                case 2: GROUP_LANES(2, true); break;
                case 4: GROUP_LANES(4, true); break;
                case 8: GROUP_LANES(8, true); break;
                default: GROUP_LANES(per_group, false);
                }
            }
        }
        col_sums_store(a, partials, channels, part, parts);
        return;
    }
    if (per_group == VW) { /* VW groups of a sample at a time in the lanes, the rest one at a time */
        for (ulong o = o0; o < o1; o++) {
            const __global real_t *dyr = dy + o * channels;
            const __global real_t *xr = x + o * channels;
            ulong g = 0;
            for (; g + VW <= groups; g += VW) {
                ulong aff[VW];
                aff[0] = g * VW;
                row_backward_lanes_wide(dy, x, scale, mean, inv, dx, o * groups + g, aff, true, 0, has_scale, true, a,
                        channels, g * VW);
            }
            for (; g < groups; g++) {
                GROUP_ROW(VW);
            }
        }
        col_sums_store(a, partials, channels, part, parts);
        return;
    }
    switch (per_group) {
    case 2 * VW: GROUP_SAMPLES(2 * VW); break;
    case 4 * VW: GROUP_SAMPLES(4 * VW); break;
    default: GROUP_SAMPLES(per_group);
    }
    col_sums_store(a, partials, channels, part, parts);
}
#undef GROUP_SAMPLES
#undef GROUP_ROW
#undef GROUP_LANES

/*
 * Group and instance norm backward (channels-first slices, spatial > 1) fused with their parameter
 * gradients on the one-work-item family (CPU): a work-item takes one slice (sample n, group g),
 * with row_backward_serial's sums, then, channel by channel of the group, writes dX and takes the
 * compensated sums of dy and dy * xhat over the channel's spatial values while the slice is in
 * cache. They go to partials[((g * cpg + j) * parts + n) * 2 + {0, 1}] (parts = N), which
 * affine_grad_finalize merges in order of n. dY and X are read from memory once, where
 * row_backward_serial and affine_grad_serial read them twice. (Per-group affine, ONNX opset 18,
 * is the case cpg = 1, spatial = the slice.)
 */
__kernel void row_backward_affine_slices(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global param_t *restrict scale, const __global acc_t *restrict mean,
        const __global acc_t *restrict inv, __global real_t *restrict dx, __global acc_t *restrict partials,
        ulong rows, ulong groups, ulong cpg, ulong spatial, int has_scale) {
    ulong row = get_global_id(0);
    if (row >= rows) {
        return;
    }
    ulong n = row / groups;
    ulong g = row - n * groups;
    ulong cols = cpg * spatial;
    ulong base = row * cols;
    ulong aff_base = g * cpg;
    ulong parts = rows / groups;
    acc_t mu = mean[row];
    acc_t is = inv[row];
    acc_t mean_g, mean_gx;
    row_backward_means(dy, x, scale, base, 1, 0, cols, aff_base, spatial, has_scale, mu, is, cols, 0, &mean_g,
            &mean_gx);
    for (ulong j = 0; j < cpg; j++) {
        ulong off = base + j * spatial;
        const __global real_t *dys = dy + off;
        const __global real_t *xs = x + off;
        __global real_t *dxs = dx + off;
        acc_t w = has_scale != 0 ? LOADP(scale, aff_base + j) : ONE;
        accv_t sd = (accv_t) (ZERO), sd_c = (accv_t) (ZERO), sdx = (accv_t) (ZERO), sdx_c = (accv_t) (ZERO);
        acc_t td = ZERO, td_c = ZERO, tdx = ZERO, tdx_c = ZERO;
        ulong p = 0;
        for (; p + VW <= spatial; p += VW) {
            accv_t d = LOADXV(dys, p);
            accv_t xhat = (LOADXV(xs, p) - mu) * is;
            STOREXV(dxs, p, is * (d * w - mean_g - xhat * mean_gx));
            kahan_addv(&sd, &sd_c, d);
            kahan_addv(&sdx, &sdx_c, d * xhat);
        }
        for (; p < spatial; p++) {
            acc_t d = LOADX(dys, p);
            acc_t xhat = (LOADX(xs, p) - mu) * is;
            STOREX(dxs, p, is * (d * w - mean_g - xhat * mean_gx));
            kahan_add(&td, &td_c, d);
            kahan_add(&tdx, &tdx_c, d * xhat);
        }
        ulong q = ((aff_base + j) * parts + n) * 2;
        partials[q + 0] = (hsum(sdx) - hsum(sdx_c)) + (tdx - tdx_c);
        partials[q + 1] = (hsum(sd) - hsum(sd_c)) + (td - td_c);
    }
}

/* Compensated sums of dy and dy * xhat over contiguous segments, VW lanes and a scalar tail: the
 * batch-norm and channels-first parameter-gradient sums (affine_grad_serial, channel_backward_fused). */
typedef struct {
    accv_t d, d_c, dx, dx_c;
    acc_t td, td_c, tdx, tdx_c;
} dy_sums;

inline void dy_sums_start(dy_sums *a) {
    a->d = (accv_t) (ZERO);
    a->d_c = (accv_t) (ZERO);
    a->dx = (accv_t) (ZERO);
    a->dx_c = (accv_t) (ZERO);
    a->td = ZERO;
    a->td_c = ZERO;
    a->tdx = ZERO;
    a->tdx_c = ZERO;
}

/* Adds the `len` values from `off`, with xhat = (x - mu) * is. */
inline void dy_sums_add(dy_sums *a, const __global real_t *dy, const __global real_t *x, ulong off, ulong len,
        acc_t mu, acc_t is) {
    ulong j = 0;
    for (; j + VW <= len; j += VW) {
        accv_t d = LOADXV(dy, off + j);
        kahan_addv(&a->d, &a->d_c, d);
        kahan_addv(&a->dx, &a->dx_c, d * ((LOADXV(x, off + j) - mu) * is));
    }
    for (; j < len; j++) {
        acc_t d = LOADX(dy, off + j);
        kahan_add(&a->td, &a->td_c, d);
        kahan_add(&a->tdx, &a->tdx_c, d * ((LOADX(x, off + j) - mu) * is));
    }
}

/* The sum of dy * xhat. */
inline acc_t dy_sums_dyxhat(const dy_sums *a) {
    return (hsum(a->dx) - hsum(a->dx_c)) + (a->tdx - a->tdx_c);
}

/* The sum of dy. */
inline acc_t dy_sums_dy(const dy_sums *a) {
    return (hsum(a->d) - hsum(a->d_c)) + (a->td - a->td_c);
}

/* Stage 1 for inner > 1, one work-item per (channel, part) over contiguous segments. */
__kernel void affine_grad_serial(const __global real_t *dy, const __global real_t *x, const __global acc_t *mean,
        const __global acc_t *inv, __global acc_t *partials, ulong outer, ulong channels, ulong inner, ulong parts,
        AFFINE_GRAD_ARGS) {
    ulong t = get_global_id(0);
    if (t >= channels * parts) {
        return;
    }
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    dy_sums a;
    dy_sums_start(&a);
    ulong v = begin;
    while (v < end) {
        ulong o = v / inner;
        ulong s = v - o * inner;
        ulong len = min(inner - s, end - v);
        ulong si = STAT_INDEX(o, c);
        acc_t mu = rms != 0 ? ZERO : mean[si];
        dy_sums_add(&a, dy, x, (o * channels + c) * inner + s, len, mu, inv[si]);
        v += len;
    }
    partials[t * 2 + 0] = dy_sums_dyxhat(&a);
    partials[t * 2 + 1] = dy_sums_dy(&a);
}

/* dX of one segment of `inner` values at off: channel_backward's expression (training: from the
 * channel's means of dy and dy * xhat; inference: dy * w * inv), k = w * inv. */
inline void channel_dx_segment(const __global real_t *dy, const __global real_t *x, __global real_t *dx, ulong off,
        ulong inner, acc_t mu, acc_t is, acc_t k, acc_t mean_d, acc_t mean_dx, int training) {
    ulong j = 0;
    if (training != 0) {
        for (; j + VW <= inner; j += VW) {
            accv_t xhat = (LOADXV(x, off + j) - mu) * is;
            STOREXV(dx, off + j, k * (LOADXV(dy, off + j) - mean_d - xhat * mean_dx));
        }
        for (; j < inner; j++) {
            acc_t xhat = (LOADX(x, off + j) - mu) * is;
            STOREX(dx, off + j, k * (LOADX(dy, off + j) - mean_d - xhat * mean_dx));
        }
    } else {
        for (; j + VW <= inner; j += VW) {
            STOREXV(dx, off + j, LOADXV(dy, off + j) * k);
        }
        for (; j < inner; j++) {
            STOREX(dx, off + j, LOADX(dy, off + j) * k);
        }
    }
}

/*
 * Batch-norm backward fused for the one-work-item family (CPU), one work-item per channel, when a
 * channel is one part: its sums of dy * xhat and dy (affine_grad_serial's loop with one part: the
 * same partials, which affine_grad_finalize turns into dScale and dBias unchanged), then its dX over
 * the same segments while they are in cache, VW values at a time, with channel_backward's
 * expression (training: from those sums; inference: dy * w * inv). dY and X are read from memory
 * once instead of twice, and dX is not written one element per work-item.
 */
__kernel void channel_backward_fused(const __global real_t *dy, const __global real_t *x, const __global acc_t *mean,
        const __global acc_t *inv, const __global param_t *scale, __global acc_t *partials, __global real_t *dx,
        ulong outer, ulong channels, ulong inner, ulong count, int training, int has_scale) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t mu = mean[c];
    acc_t is = inv[c];
    dy_sums a;
    dy_sums_start(&a);
    for (ulong o = 0; o < outer; o++) {
        dy_sums_add(&a, dy, x, (o * channels + c) * inner, inner, mu, is);
    }
    acc_t sum_dx = dy_sums_dyxhat(&a);
    acc_t sum_d = dy_sums_dy(&a);
    partials[c * 2 + 0] = sum_dx;
    partials[c * 2 + 1] = sum_d;
    acc_t k = (has_scale != 0 ? LOADP(scale, c) : ONE) * is;
    acc_t n = (acc_t) count;
    acc_t mean_d = sum_d / n;
    acc_t mean_dx = sum_dx / n;
    for (ulong o = 0; o < outer; o++) {
        channel_dx_segment(dy, x, dx, (o * channels + c) * inner, inner, mu, is, k, mean_d, mean_dx, training);
    }
}

/*
 * channel_backward_fused for a block of channels_per_item (at most CHANNEL_BLOCK_MAX) consecutive
 * channels per work-item, as channel_norm_blocks does the forward: for each outer index the block's
 * segments of dY and X lie side by side and are summed as one stream, then the block's dX is
 * written from cache. Each channel's sums are taken in channel_backward_fused's order: the same bits.
 */
__kernel void channel_backward_blocks(const __global real_t *dy, const __global real_t *x,
        const __global acc_t *mean, const __global acc_t *inv, const __global param_t *scale,
        __global acc_t *partials, __global real_t *dx, ulong outer, ulong channels, ulong inner, ulong count,
        int training, int has_scale, ulong channels_per_item) {
    ulong c0 = get_global_id(0) * channels_per_item;
    if (c0 >= channels) {
        return;
    }
    uint kc = (uint) min((ulong) CHANNEL_BLOCK_MAX, min(channels, c0 + channels_per_item) - c0);
    dy_sums a[CHANNEL_BLOCK_MAX];
    for (uint j = 0; j < kc; j++) {
        dy_sums_start(&a[j]);
    }
    for (ulong o = 0; o < outer; o++) {
        for (uint j = 0; j < kc; j++) {
            ulong c = c0 + j;
            dy_sums_add(&a[j], dy, x, (o * channels + c) * inner, inner, mean[c], inv[c]);
        }
    }
    acc_t ks[CHANNEL_BLOCK_MAX], mean_d[CHANNEL_BLOCK_MAX], mean_dx[CHANNEL_BLOCK_MAX];
    acc_t n = (acc_t) count;
    for (uint j = 0; j < kc; j++) {
        ulong c = c0 + j;
        acc_t sum_dx = dy_sums_dyxhat(&a[j]);
        acc_t sum_d = dy_sums_dy(&a[j]);
        partials[c * 2 + 0] = sum_dx;
        partials[c * 2 + 1] = sum_d;
        ks[j] = (has_scale != 0 ? LOADP(scale, c) : ONE) * inv[c];
        mean_d[j] = sum_d / n;
        mean_dx[j] = sum_dx / n;
    }
    for (ulong o = 0; o < outer; o++) {
        for (uint j = 0; j < kc; j++) {
            ulong c = c0 + j;
            channel_dx_segment(dy, x, dx, (o * channels + c) * inner, inner, mean[c], inv[c], ks[j], mean_d[j],
                    mean_dx[j], training);
        }
    }
}

/* Stage 1 for inner > 1 on GPUs: one work-group per (channel, part); two local arrays. */
__kernel void affine_grad_group(const __global real_t *dy, const __global real_t *x, const __global acc_t *mean,
        const __global acc_t *inv, __global acc_t *partials, ulong outer, ulong channels, ulong inner, ulong parts,
        AFFINE_GRAD_ARGS, __local acc_t *la, __local acc_t *lb) {
    ulong t = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    acc_t sd = ZERO, sd_c = ZERO, sdx = ZERO, sdx_c = ZERO;
    for (ulong v = begin + lid; v < end; v += wg) {
        ulong o = v / inner;
        ulong si = STAT_INDEX(o, c);
        acc_t mu = rms != 0 ? ZERO : mean[si];
        ulong i = channel_offset(v, c, channels, inner);
        acc_t d = LOADX(dy, i);
        kahan_add(&sd, &sd_c, d);
        kahan_add(&sdx, &sdx_c, d * ((LOADX(x, i) - mu) * inv[si]));
    }
    sum2_reduce_local(la, lb, lid, wg, sdx, sd);
    if (lid == 0) {
        partials[t * 2 + 0] = la[0];
        partials[t * 2 + 1] = lb[0];
    }
}

/* Stage 2: per channel, the parts in order. The sums stay in acc_t for batch norm's dx
 * (sum_out, optional) and are stored in the parameter type as dScale and dBias (optional). */
__kernel void affine_grad_finalize(const __global acc_t *partials, __global param_t *dscale, __global param_t *dbias,
        __global acc_t *sums_out, ulong channels, ulong parts, int write_scale, int write_bias, int write_sums) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t s = ZERO, s_c = ZERO, b = ZERO, b_c = ZERO;
    for (ulong p = 0; p < parts; p++) {
        ulong t = c * parts + p;
        kahan_add(&s, &s_c, partials[t * 2 + 0]);
        kahan_add(&b, &b_c, partials[t * 2 + 1]);
    }
    if (write_scale != 0) {
        STOREP(dscale, c, s);
    }
    if (write_bias != 0) {
        STOREP(dbias, c, b);
    }
    if (write_sums != 0) {
        sums_out[c * 2 + 0] = s;
        sums_out[c * 2 + 1] = b;
    }
}

/* Batch-norm dx, NDRange (inner, outer * channels). sums[c * 2] = sum(dy * xhat), sums[c * 2 + 1]
 * = sum(dy), from affine_grad_finalize (training only). */
__kernel void channel_backward(const __global real_t *dy, const __global real_t *x, const __global acc_t *mean,
        const __global acc_t *inv, const __global param_t *scale, const __global acc_t *sums, __global real_t *dx,
        ulong channels, ulong inner, ulong count, int training, int has_scale) {
    ulong s = get_global_id(0);
    ulong seg = get_global_id(1);
    ulong c = seg % channels;
    ulong i = seg * inner + s;
    acc_t is = inv[c];
    acc_t k = (has_scale != 0 ? LOADP(scale, c) : ONE) * is;
    if (training != 0) {
        acc_t n = (acc_t) count;
        acc_t xhat = (LOADX(x, i) - mean[c]) * is;
        STOREX(dx, i, k * (LOADX(dy, i) - sums[c * 2 + 1] / n - xhat * (sums[c * 2 + 0] / n)));
    } else {
        STOREX(dx, i, LOADX(dy, i) * k);
    }
}

/* Batch-norm dx when channels are one apart (inner == 1: BatchNorm1d's (N, C), channels-last) on
 * one-work-item kernels (CPU): channel_backward_coeffs puts what channel_backward reads per
 * element into planar arrays (coef: [k = w * inv | mean | inv | sum(dy) / n | sum(dy * xhat) / n],
 * 5 x channels), so channel_backward_cols can normalize a block of rows VW channels at a time with
 * vector loads. Same operations in the same order as channel_backward: the same bits. */
__kernel void channel_backward_coeffs(const __global acc_t *mean, const __global acc_t *inv,
        const __global param_t *scale, const __global acc_t *sums, __global acc_t *coef, ulong channels, ulong count,
        int training, int has_scale) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t is = inv[c];
    coef[c] = (has_scale != 0 ? LOADP(scale, c) : ONE) * is;
    coef[channels + c] = training != 0 ? mean[c] : ZERO;
    coef[2 * channels + c] = is;
    coef[3 * channels + c] = training != 0 ? sums[c * 2 + 1] / (acc_t) count : ZERO;
    coef[4 * channels + c] = training != 0 ? sums[c * 2 + 0] / (acc_t) count : ZERO;
}

__kernel void channel_backward_cols(const __global real_t *restrict dy, const __global real_t *restrict x,
        const __global acc_t *restrict coef, __global real_t *restrict dx, ulong rows, ulong channels,
        ulong rows_per_item, int training) {
    ulong r0 = get_global_id(0) * rows_per_item;
    ulong r1 = min(rows, r0 + rows_per_item);
    const __global acc_t *kc = coef;
    const __global acc_t *mc = coef + channels;
    const __global acc_t *ic = coef + 2 * channels;
    const __global acc_t *ac = coef + 3 * channels;
    const __global acc_t *bc = coef + 4 * channels;
    for (ulong r = r0; r < r1; r++) {
        const __global real_t *dyr = dy + r * channels;
        const __global real_t *xr = x + r * channels;
        __global real_t *dxr = dx + r * channels;
        ulong c = 0;
        if (training != 0) {
            for (; c + VW <= channels; c += VW) {
                accv_t xhat = (LOADXV(xr, c) - VLOAD(0, mc + c)) * VLOAD(0, ic + c);
                STOREXV(dxr, c, VLOAD(0, kc + c) * (LOADXV(dyr, c) - VLOAD(0, ac + c) - xhat * VLOAD(0, bc + c)));
            }
            for (; c < channels; c++) {
                acc_t xhat = (LOADX(xr, c) - mc[c]) * ic[c];
                STOREX(dxr, c, kc[c] * (LOADX(dyr, c) - ac[c] - xhat * bc[c]));
            }
        } else {
            for (; c + VW <= channels; c += VW) {
                STOREXV(dxr, c, LOADXV(dyr, c) * VLOAD(0, kc + c));
            }
            for (; c < channels; c++) {
                STOREX(dxr, c, LOADX(dyr, c) * kc[c]);
            }
        }
    }
}
