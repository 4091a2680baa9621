/*
 * Per-channel normalization: batch normalization and mean-variance normalization over all but a
 * block of consecutive dimensions. X is viewed as (outer, channels, inner); channel c holds
 * outer * inner values, in `outer` segments of `inner` contiguous values. Channels-last batch
 * norm is the view (N * D..., C, 1).
 *
 * Statistics take two stages, so that a channel of millions of values uses the whole device and
 * the result does not depend on scheduling (no atomics):
 *   1. channel_partial_*: the values of each channel are split into `parts` ranges; each range is
 *      reduced to (count, mean, M2) and written to partials[(c * parts + part) * 3 + {0,1,2}].
 *      _serial: one work-item per range (CPU); _group: one work-group per range (GPU); for one
 *      value per row (inner == 1) on CPUs, _rows: one work-item per block of rows, all channels.
 *   2. channel_finalize: one work-item per channel merges its parts in a fixed order (Chan), then
 *      writes mean, inverse standard deviation and, optionally, the running-statistic update.
 * Every stage shifts channel c by k = shift_of(x[c * inner]) (its first element), so the partial
 * means stay small (see common.cl); channel_finalize adds k back.
 * Then channel_apply normalizes every element; channel_running_stats serves inference mode.
 */

/* Virtual index v of channel c (v = o * inner + s) to its element offset. */
inline ulong channel_offset(ulong v, ulong c, ulong channels, ulong inner) {
    ulong o = v / inner;
    ulong s = v - o * inner;
    return (o * channels + c) * inner + s;
}

__kernel void channel_partial_serial(const __global real_t *x, __global acc_t *partials, ulong outer,
        ulong channels, ulong inner, ulong parts) {
    ulong t = get_global_id(0);
    if (t >= channels * parts) {
        return;
    }
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    acc_t k = shift_of(LOADX(x, c * inner));
    acc_t n = ZERO, m = ZERO, m2 = ZERO;
    ulong v = begin;
    while (v < end) {
        ulong o = v / inner;
        ulong s = v - o * inner;
        ulong len = min(inner - s, end - v);
        moments_add_contiguous(x + (o * channels + c) * inner + s, len, k, &n, &m, &m2);
        v += len;
    }
    partials[t * 3 + 0] = n;
    partials[t * 3 + 1] = m;
    partials[t * 3 + 2] = m2;
}

/*
 * Stage 1 when a channel's values are one per row (inner == 1: BatchNorm1d's (N, C) and every
 * channels-last batch norm, viewed as (N * D..., C)): a work-item takes VW adjacent channels over
 * one part of the rows, so each row contributes one contiguous vector load instead of VW
 * one-value runs. Runs of COL_RUN rows get the two-pass treatment of common.cl per lane and are
 * merged per channel with Chan's formula; the partials have channel_partial_serial's layout.
 * channel_partial_rows replaces it wherever one block of rows' scratch fits an allocation: on a
 * CPU, a row per vector load strides a page per load, which no prefetcher follows.
 */
#define COL_RUN (RUN / VW)
/* acc_t values per channel in a channel_partial_rows work-item's scratch slice. */
#define COL_SLICES 5

__kernel void channel_partial_cols(const __global real_t *x, __global acc_t *partials, ulong rows, ulong channels,
        ulong parts) {
    ulong t = get_global_id(0);
    ulong blocks = (channels + VW - 1) / VW;
    if (t >= blocks * parts) {
        return;
    }
    ulong blk = t / parts;
    ulong part = t - blk * parts;
    ulong c0 = blk * VW;
    uint w = (uint) min((ulong) VW, channels - c0);
    ulong begin = rows * part / parts;
    ulong end = rows * (part + 1) / parts;
    acc_t k[VW], mean[VW], m2[VW];
    for (uint j = 0; j < VW; j++) {
        k[j] = j < w ? shift_of(LOADX(x, c0 + j)) : ZERO;
        mean[j] = ZERO;
        m2[j] = ZERO;
    }
    acc_t n = ZERO;
    if (w == VW) {
        accv_t kv = VLOAD(0, k);
        for (ulong r0 = begin; r0 < end; r0 += COL_RUN) {
            uint m = (uint) min((ulong) COL_RUN, end - r0);
            const __global real_t *q = x + r0 * channels + c0;
            accv_t sa = (accv_t) (ZERO), sb = (accv_t) (ZERO);
            uint i = 0;
            for (; i + 2 <= m; i += 2) {
                sa += LOADXV(q, i * channels) - kv;
                sb += LOADXV(q, (i + 1) * channels) - kv;
            }
            if (i < m) {
                sa += LOADXV(q, i * channels) - kv;
            }
            accv_t run_mean = (sa + sb) / (acc_t) m;
            accv_t da = (accv_t) (ZERO), db = (accv_t) (ZERO);
            for (i = 0; i + 2 <= m; i += 2) {
                accv_t d = (LOADXV(q, i * channels) - kv) - run_mean;
                accv_t e = (LOADXV(q, (i + 1) * channels) - kv) - run_mean;
                da += d * d;
                db += e * e;
            }
            if (i < m) {
                accv_t d = (LOADXV(q, i * channels) - kv) - run_mean;
                da += d * d;
            }
            acc_t rm[VW], rs[VW];
            VSTORE(run_mean, 0, rm);
            VSTORE(da + db, 0, rs);
            for (uint j = 0; j < VW; j++) {
                acc_t nj = n;
                moments_merge(&nj, &mean[j], &m2[j], (acc_t) m, rm[j], rs[j]);
            }
            n += (acc_t) m;
        }
    } else {
        /* The last, partial block of channels: the same runs, one lane at a time. */
        for (uint j = 0; j < w; j++) {
            acc_t nj = ZERO;
            for (ulong r0 = begin; r0 < end; r0 += COL_RUN) {
                uint m = (uint) min((ulong) COL_RUN, end - r0);
                const __global real_t *q = x + r0 * channels + c0 + j;
                acc_t sum = ZERO;
                for (uint i = 0; i < m; i++) {
                    sum += LOADX(q, i * channels) - k[j];
                }
                acc_t run_mean = sum / (acc_t) m;
                acc_t s2 = ZERO;
                for (uint i = 0; i < m; i++) {
                    acc_t d = (LOADX(q, i * channels) - k[j]) - run_mean;
                    s2 += d * d;
                }
                moments_merge(&nj, &mean[j], &m2[j], (acc_t) m, run_mean, s2);
            }
        }
        n = (acc_t) (end - begin);
    }
    for (uint j = 0; j < w; j++) {
        ulong o = ((c0 + j) * parts + part) * 3;
        partials[o + 0] = n;
        partials[o + 1] = mean[j];
        partials[o + 2] = m2[j];
    }
}

/*
 * Stage 1 when a channel's values are one per row, on one-work-item kernels (CPU): a work-item
 * takes a block of rows and walks them row by row, VW channels at a time, so X streams
 * contiguously (channel_partial_cols reads one vector per row, a page apart: no prefetcher follows
 * that). The block's runs of COL_RUN rows are taken in two passes per column, in tiles of
 * COL_TILE columns (the second pass finds the run's tile in L2), and merged per column with
 * Chan's formula, as channel_partial_cols does. Per-column state lives in the work-item's own
 * slice of `acc` (COL_SLICES x channels, cache resident): the shift, the run's sum (then its
 * mean), the run's squared deviations, and the block's mean and M2 so far. The partials have
 * channel_partial_serial's layout.
 */
#define COL_TILE 1024

__kernel void channel_partial_rows(const __global real_t *restrict x, __global acc_t *restrict acc,
        __global acc_t *restrict partials, ulong rows, ulong channels, ulong parts) {
    ulong part = get_global_id(0);
    if (part >= parts) {
        return;
    }
    ulong begin = rows * part / parts;
    ulong end = rows * (part + 1) / parts;
    __global acc_t *k = acc + part * channels * COL_SLICES;
    __global acc_t *s = k + channels;
    __global acc_t *q = s + channels;
    __global acc_t *mean = q + channels;
    __global acc_t *m2 = mean + channels;
    for (ulong c = 0; c < channels; c++) {
        k[c] = shift_of(LOADX(x, c));
        mean[c] = ZERO;
        m2[c] = ZERO;
    }
    acc_t n = ZERO;
    for (ulong r0 = begin; r0 < end; r0 += COL_RUN) {
        uint m = (uint) min((ulong) COL_RUN, end - r0);
        for (ulong c0 = 0; c0 < channels; c0 += COL_TILE) {
            ulong c1 = min(channels, c0 + COL_TILE);
            ulong cv = c0 + (c1 - c0) / VW * VW;
            for (ulong c = c0; c < c1; c++) {
                s[c] = ZERO;
                q[c] = ZERO;
            }
            /* Four rows per visit of the sums, in row order: the same bits as a row at a time. The two
             * passes are written out: as one helper with a flag, PoCL's code took 15-20% longer. */
            uint i = 0;
            for (; i + 4 <= m; i += 4) {
                const __global real_t *x0 = x + (r0 + i) * channels;
                const __global real_t *x1 = x0 + channels;
                const __global real_t *x2 = x1 + channels;
                const __global real_t *x3 = x2 + channels;
                for (ulong c = c0; c < cv; c += VW) {
                    accv_t kv = VLOAD(0, k + c);
                    accv_t sv = VLOAD(0, s + c);
                    sv += LOADXV(x0, c) - kv;
                    sv += LOADXV(x1, c) - kv;
                    sv += LOADXV(x2, c) - kv;
                    sv += LOADXV(x3, c) - kv;
                    VSTORE(sv, 0, s + c);
                }
                for (ulong c = cv; c < c1; c++) {
                    acc_t sc = s[c];
                    sc += LOADX(x0, c) - k[c];
                    sc += LOADX(x1, c) - k[c];
                    sc += LOADX(x2, c) - k[c];
                    sc += LOADX(x3, c) - k[c];
                    s[c] = sc;
                }
            }
            for (; i < m; i++) {
                const __global real_t *xr = x + (r0 + i) * channels;
                for (ulong c = c0; c < cv; c += VW) {
                    VSTORE(VLOAD(0, s + c) + (LOADXV(xr, c) - VLOAD(0, k + c)), 0, s + c);
                }
                for (ulong c = cv; c < c1; c++) {
                    s[c] += LOADX(xr, c) - k[c];
                }
            }
            for (ulong c = c0; c < c1; c++) {
                s[c] /= (acc_t) m;
            }
            for (i = 0; i + 4 <= m; i += 4) {
                const __global real_t *x0 = x + (r0 + i) * channels;
                const __global real_t *x1 = x0 + channels;
                const __global real_t *x2 = x1 + channels;
                const __global real_t *x3 = x2 + channels;
                for (ulong c = c0; c < cv; c += VW) {
                    accv_t kv = VLOAD(0, k + c);
                    accv_t mv = VLOAD(0, s + c);
                    accv_t d0 = (LOADXV(x0, c) - kv) - mv;
                    accv_t d1 = (LOADXV(x1, c) - kv) - mv;
                    accv_t d2 = (LOADXV(x2, c) - kv) - mv;
                    accv_t d3 = (LOADXV(x3, c) - kv) - mv;
                    accv_t qv = VLOAD(0, q + c);
                    qv += d0 * d0;
                    qv += d1 * d1;
                    qv += d2 * d2;
                    qv += d3 * d3;
                    VSTORE(qv, 0, q + c);
                }
                for (ulong c = cv; c < c1; c++) {
                    acc_t qc = q[c];
                    for (uint j = 0; j < 4; j++) {
                        acc_t d = (LOADX(x0, j * channels + c) - k[c]) - s[c];
                        qc += d * d;
                    }
                    q[c] = qc;
                }
            }
            for (; i < m; i++) {
                const __global real_t *xr = x + (r0 + i) * channels;
                for (ulong c = c0; c < cv; c += VW) {
                    accv_t d = (LOADXV(xr, c) - VLOAD(0, k + c)) - VLOAD(0, s + c);
                    VSTORE(VLOAD(0, q + c) + d * d, 0, q + c);
                }
                for (ulong c = cv; c < c1; c++) {
                    acc_t d = (LOADX(xr, c) - k[c]) - s[c];
                    q[c] += d * d;
                }
            }
            for (ulong c = c0; c < c1; c++) {
                acc_t nc = n, mc = mean[c], m2c = m2[c];
                moments_merge(&nc, &mc, &m2c, (acc_t) m, s[c], q[c]);
                mean[c] = mc;
                m2[c] = m2c;
            }
        }
        n += (acc_t) m;
    }
    for (ulong c = 0; c < channels; c++) {
        ulong o = (c * parts + part) * 3;
        partials[o + 0] = n;
        partials[o + 1] = mean[c];
        partials[o + 2] = m2[c];
    }
}

/* Local memory: three arrays of get_local_size(0) acc_t; power-of-two work-group size. */
__kernel void channel_partial_group(const __global real_t *x, __global acc_t *partials, ulong outer,
        ulong channels, ulong inner, ulong parts, __local acc_t *ln, __local acc_t *lmean, __local acc_t *lm2) {
    ulong t = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    acc_t k = shift_of(LOADX(x, c * inner));
    acc_t n = ZERO, m = ZERO, m2 = ZERO;
    for (ulong v = begin + lid; v < end; v += wg) {
        moments_add_one(&n, &m, &m2, LOADX(x, channel_offset(v, c, channels, inner)) - k);
    }
    moments_reduce_local(ln, lmean, lm2, lid, wg, n, m, m2);
    if (lid == 0) {
        partials[t * 3 + 0] = ln[0];
        partials[t * 3 + 1] = lmean[0];
        partials[t * 3 + 2] = lm2[0];
    }
}

/* Merges channel c's parts in order; returns the shifted mean and M2 through the pointers. */
inline void channel_merge(const __global acc_t *partials, ulong c, ulong parts, acc_t *m, acc_t *m2) {
    acc_t n = ZERO;
    *m = ZERO;
    *m2 = ZERO;
    for (ulong p = 0; p < parts; p++) {
        ulong t = c * parts + p;
        moments_merge(&n, m, m2, partials[t * 3 + 0], partials[t * 3 + 1], partials[t * 3 + 2]);
    }
}

/* running' = running * (1 - w) + batch * w; the variance fed in is M2/n or, if unbiased, M2/(n-1). */
__kernel void channel_finalize(const __global real_t *x, const __global acc_t *partials, __global acc_t *mean_out,
        __global acc_t *mean_lo_out, __global acc_t *inv_out, const __global param_t *run_mean_in,
        const __global param_t *run_var_in, __global param_t *run_mean_out, __global param_t *run_var_out,
        ulong channels, ulong inner, ulong parts, ulong count, float eps, int mode, int update, float batch_weight,
        int unbiased, int write_mean_lo) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t m, m2;
    channel_merge(partials, c, parts, &m, &m2);
    acc_t var = m2 / (acc_t) count;
    acc_t k = shift_of(LOADX(x, c * inner));
    acc_t mean = k + m;
    mean_out[c] = mean;
    if (write_mean_lo != 0) {
        /* k and mean are close, so k - mean is exact (Sterbenz); adding m gives what the rounding
         * of k + m lost, as long as the mean is not tiny against k. */
        mean_lo_out[c] = (k - mean) + m;
    }
    inv_out[c] = inv_std_of(mode, var, eps);
    if (update != 0) {
        acc_t v = unbiased != 0 ? m2 / (acc_t) (count - 1) : var;
        acc_t w = (acc_t) batch_weight;
        STOREP(run_mean_out, c, LOADP(run_mean_in, c) * (ONE - w) + mean * w);
        STOREP(run_var_out, c, LOADP(run_var_in, c) * (ONE - w) + v * w);
    }
}

/* What channel_norm_serial and channel_norm_blocks apply to channel c, once its moments are in. */
typedef struct {
    acc_t mean, lo, inv, w, b;
} channel_terms;

/* Channel c's statistics from its shift k and the moments of its count values less k (mean m, M2 m2):
 * writes the saved mean, its rounding error (HAS_MEAN_LO), the inverse standard deviation and the
 * running update, and returns the terms of the normalization. */
inline channel_terms channel_finish(ulong c, acc_t k, acc_t m, acc_t m2, ulong count, const __global param_t *scale,
        const __global param_t *bias, __global acc_t *mean_out, __global acc_t *mean_lo_out, __global acc_t *inv_out,
        const __global param_t *run_mean_in, const __global param_t *run_var_in, __global param_t *run_mean_out,
        __global param_t *run_var_out, float eps, int mode, int update, float batch_weight, int unbiased, int flags) {
    channel_terms t;
    acc_t var = m2 / (acc_t) count;
    t.mean = k + m;
    mean_out[c] = t.mean;
    t.lo = ZERO;
    if ((flags & HAS_MEAN_LO) != 0) {
        t.lo = (k - t.mean) + m; /* as channel_finalize */
        mean_lo_out[c] = t.lo;
    }
    t.inv = inv_std_of(mode, var, eps);
    inv_out[c] = t.inv;
    if (update != 0) {
        acc_t v = unbiased != 0 ? m2 / (acc_t) (count - 1) : var;
        acc_t bw = (acc_t) batch_weight;
        STOREP(run_mean_out, c, LOADP(run_mean_in, c) * (ONE - bw) + t.mean * bw);
        STOREP(run_var_out, c, LOADP(run_var_in, c) * (ONE - bw) + v * bw);
    }
    t.w = (flags & HAS_SCALE) != 0 ? LOADP(scale, c) : ONE;
    t.b = (flags & HAS_BIAS) != 0 ? LOADP(bias, c) : ZERO;
    return t;
}

/* One segment of `inner` values of a channel normalized: channel_apply's expression. */
inline void channel_apply_segment(const __global real_t *restrict xs, __global real_t *restrict ys, ulong inner,
        channel_terms t) {
    ulong p = 0;
    for (; p + VW <= inner; p += VW) {
        STOREXV(ys, p, ((LOADXV(xs, p) - t.mean) - t.lo) * t.inv * t.w + t.b);
    }
    for (; p < inner; p++) {
        STOREX(ys, p, ((LOADX(xs, p) - t.mean) - t.lo) * t.inv * t.w + t.b);
    }
}

#define CHANNEL_FINISH_ARGS scale, bias, mean_out, mean_lo_out, inv_out, run_mean_in, run_var_in, run_mean_out, \
    run_var_out, eps, mode, update, batch_weight, unbiased, flags

/*
 * Training-mode batch norm fused for the one-work-item family (CPU), one work-item per channel,
 * where each channel is a single part: the channel's moments (channel_partial_serial's loop), its
 * statistics and running update (channel_finalize's arithmetic; merging one part into nothing is
 * a copy), then its segments normalized VW values at a time while they are still in the core's
 * cache. X is read from memory once, where the three-kernel path reads it twice and channel_apply
 * handles one element per work-item. `flags`: HAS_SCALE, HAS_BIAS, HAS_MEAN_LO (write and subtract
 * the mean's rounding error).
 */
__kernel void channel_norm_serial(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias, __global real_t *y, __global acc_t *mean_out, __global acc_t *mean_lo_out,
        __global acc_t *inv_out, const __global param_t *run_mean_in, const __global param_t *run_var_in,
        __global param_t *run_mean_out, __global param_t *run_var_out, ulong outer, ulong channels, ulong inner,
        float eps, int mode, int update, float batch_weight, int unbiased, int flags) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t k = shift_of(LOADX(x, c * inner));
    acc_t n = ZERO, m = ZERO, m2 = ZERO;
    for (ulong o = 0; o < outer; o++) {
        moments_add_contiguous(x + (o * channels + c) * inner, inner, k, &n, &m, &m2);
    }
    channel_terms t = channel_finish(c, k, m, m2, outer * inner, CHANNEL_FINISH_ARGS);
    for (ulong o = 0; o < outer; o++) {
        ulong off = (o * channels + c) * inner;
        channel_apply_segment(x + off, y + off, inner, t);
    }
}

/* Most channels a work-item of channel_norm_blocks and channel_backward_blocks takes
 * (WorkSizing.CHANNEL_BLOCK_MAX). */
#define CHANNEL_BLOCK_MAX 32

/*
 * channel_norm_serial for a block of channels_per_item (at most CHANNEL_BLOCK_MAX) consecutive
 * channels per work-item, taken together: for each outer index o, the block's segments lie side by
 * side in memory, so the moments are gathered over one stream of channels_per_item * inner values
 * (channel_norm_serial strides from segment to segment of one channel, and each segment of a few
 * KiB restarts the core's prefetch); then the block is normalized the same way, from cache. Each
 * channel's moments are taken in channel_norm_serial's order, so the bits are the same.
 */
__kernel void channel_norm_blocks(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias, __global real_t *y, __global acc_t *mean_out, __global acc_t *mean_lo_out,
        __global acc_t *inv_out, const __global param_t *run_mean_in, const __global param_t *run_var_in,
        __global param_t *run_mean_out, __global param_t *run_var_out, ulong outer, ulong channels, ulong inner,
        float eps, int mode, int update, float batch_weight, int unbiased, int flags, ulong channels_per_item) {
    ulong c0 = get_global_id(0) * channels_per_item;
    if (c0 >= channels) {
        return;
    }
    uint kc = (uint) min((ulong) CHANNEL_BLOCK_MAX, min(channels, c0 + channels_per_item) - c0);
    acc_t ks[CHANNEL_BLOCK_MAX], ns[CHANNEL_BLOCK_MAX], ms[CHANNEL_BLOCK_MAX], m2s[CHANNEL_BLOCK_MAX];
    for (uint j = 0; j < kc; j++) {
        ks[j] = shift_of(LOADX(x, (c0 + j) * inner));
        ns[j] = ZERO;
        ms[j] = ZERO;
        m2s[j] = ZERO;
    }
    for (ulong o = 0; o < outer; o++) {
        const __global real_t *xo = x + (o * channels + c0) * inner;
        for (uint j = 0; j < kc; j++) {
            moments_add_contiguous(xo + j * inner, inner, ks[j], &ns[j], &ms[j], &m2s[j]);
        }
    }
    channel_terms ts[CHANNEL_BLOCK_MAX];
    for (uint j = 0; j < kc; j++) {
        ts[j] = channel_finish(c0 + j, ks[j], ms[j], m2s[j], outer * inner, CHANNEL_FINISH_ARGS);
    }
    for (ulong o = 0; o < outer; o++) {
        ulong off = (o * channels + c0) * inner;
        for (uint j = 0; j < kc; j++) {
            channel_apply_segment(x + off + j * inner, y + off + j * inner, inner, ts[j]);
        }
    }
}
#undef CHANNEL_FINISH_ARGS

/* Moments only (for merging across devices): mean and M2 per channel, merged in a fixed order. */
__kernel void channel_moments(const __global real_t *x, const __global acc_t *partials, __global acc_t *mean_out,
        __global acc_t *mean_lo_out, __global acc_t *m2_out, ulong channels, ulong inner, ulong parts,
        int write_mean_lo) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t m, m2;
    channel_merge(partials, c, parts, &m, &m2);
    acc_t k = shift_of(LOADX(x, c * inner));
    acc_t mean = k + m;
    mean_out[c] = mean;
    if (write_mean_lo != 0) {
        mean_lo_out[c] = (k - mean) + m; /* as channel_finalize */
    }
    m2_out[c] = m2;
}

/* Inference mode: the statistics are the running ones (in the parameter type). */
__kernel void channel_running_stats(const __global param_t *run_mean, const __global param_t *run_var,
        __global acc_t *mean_out, __global acc_t *inv_out, ulong channels, float eps, int mode) {
    ulong c = get_global_id(0);
    if (c < channels) {
        mean_out[c] = LOADP(run_mean, c);
        inv_out[c] = inv_std_of(mode, LOADP(run_var, c), eps);
    }
}

/* NDRange (inner, outer * channels): one work-item per element, channel from the segment index. */
__kernel void channel_apply(const __global real_t *x, const __global acc_t *mean, const __global acc_t *mean_lo,
        const __global acc_t *inv, const __global param_t *scale, const __global param_t *bias, __global real_t *y,
        ulong channels, ulong inner, int flags) {
    ulong s = get_global_id(0);
    ulong seg = get_global_id(1);
    ulong c = seg % channels;
    ulong i = seg * inner + s;
    acc_t w = (flags & HAS_SCALE) != 0 ? LOADP(scale, c) : ONE;
    acc_t b = (flags & HAS_BIAS) != 0 ? LOADP(bias, c) : ZERO;
    acc_t lo = (flags & HAS_MEAN_LO) != 0 ? mean_lo[c] : ZERO;
    STOREX(y, i, ((LOADX(x, i) - mean[c]) - lo) * inv[c] * w + b);
}

/* channel_apply for inner == 1 on one-work-item kernels (CPU): a work-item normalizes a block of
 * rows, VW channels at a time, where channel_apply would gather the statistics per element. */
__kernel void channel_apply_cols(const __global real_t *restrict x, const __global acc_t *restrict mean,
        const __global acc_t *restrict mean_lo, const __global acc_t *restrict inv,
        const __global param_t *restrict scale, const __global param_t *restrict bias, __global real_t *restrict y,
        ulong rows, ulong channels, ulong rows_per_item, int flags) {
    ulong r0 = get_global_id(0) * rows_per_item;
    ulong r1 = min(rows, r0 + rows_per_item);
    const bool has_scale = (flags & HAS_SCALE) != 0;
    const bool has_bias = (flags & HAS_BIAS) != 0;
    const bool has_lo = (flags & HAS_MEAN_LO) != 0;
    for (ulong r = r0; r < r1; r++) {
        const __global real_t *xr = x + r * channels;
        __global real_t *yr = y + r * channels;
        ulong c = 0;
        for (; c + VW <= channels; c += VW) {
            accv_t lo = has_lo ? VLOAD(0, mean_lo + c) : (accv_t) (ZERO);
            accv_t v = ((LOADXV(xr, c) - VLOAD(0, mean + c)) - lo) * VLOAD(0, inv + c);
            if (has_scale) {
                v *= LOADPV(scale, c);
            }
            if (has_bias) {
                v += LOADPV(bias, c);
            }
            STOREXV(yr, c, v);
        }
        for (; c < channels; c++) {
            acc_t lo = has_lo ? mean_lo[c] : ZERO;
            acc_t w = has_scale ? LOADP(scale, c) : ONE;
            acc_t b = has_bias ? LOADP(bias, c) : ZERO;
            STOREX(yr, c, ((LOADX(xr, c) - mean[c]) - lo) * inv[c] * w + b);
        }
    }
}
