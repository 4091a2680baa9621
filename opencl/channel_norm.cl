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
 *      _serial: one work-item per range (CPU); _group: one work-group per range (GPU).
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

/* Moments only (for merging across devices): mean and M2 per channel, merged in a fixed order. */
__kernel void channel_moments(const __global real_t *x, const __global acc_t *partials, __global acc_t *mean_out,
        __global acc_t *m2_out, ulong channels, ulong inner, ulong parts) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    acc_t m, m2;
    channel_merge(partials, c, parts, &m, &m2);
    mean_out[c] = shift_of(LOADX(x, c * inner)) + m;
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
