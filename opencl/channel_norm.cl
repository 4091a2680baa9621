/*
 * Per-channel normalization: batch normalization and mean-variance normalization over all but a
 * block of consecutive dimensions. X is viewed as (outer, channels, inner); channel c holds
 * outer * inner values, in `outer` contiguous segments of `inner` values.
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
 * Then channel_apply normalizes every element; channel_inv_std serves inference mode.
 */

/* Virtual index v of channel c (v = o * inner + s) to its element offset. */
inline ulong channel_offset(ulong v, ulong c, ulong channels, ulong inner) {
    ulong o = v / inner;
    ulong s = v - o * inner;
    return (o * channels + c) * inner + s;
}

__kernel void channel_partial_serial(const __global float *x, __global float *partials, ulong outer, ulong channels,
        ulong inner, ulong parts) {
    ulong t = get_global_id(0);
    if (t >= channels * parts) {
        return;
    }
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    float k = shift_of(x[c * inner]);
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
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

/* Local memory: three arrays of get_local_size(0) floats; power-of-two work-group size. */
__kernel void channel_partial_group(const __global float *x, __global float *partials, ulong outer,
        ulong channels, ulong inner, ulong parts, __local float *ln, __local float *lmean, __local float *lm2) {
    ulong t = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    float k = shift_of(x[c * inner]);
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
    for (ulong v = begin + lid; v < end; v += wg) {
        moments_add_one(&n, &m, &m2, x[channel_offset(v, c, channels, inner)] - k);
    }
    moments_reduce_local(ln, lmean, lm2, lid, wg, n, m, m2);
    if (lid == 0) {
        partials[t * 3 + 0] = ln[0];
        partials[t * 3 + 1] = lmean[0];
        partials[t * 3 + 2] = lm2[0];
    }
}

/* running' = running * (1 - w) + batch * w; the variance fed in is M2/n or, if unbiased, M2/(n-1). */
__kernel void channel_finalize(const __global float *x, const __global float *partials, __global float *mean_out,
        __global float *mean_lo_out, __global float *inv_out,
        const __global float *run_mean_in, const __global float *run_var_in, __global float *run_mean_out,
        __global float *run_var_out, ulong channels, ulong inner, ulong parts, ulong count, float eps, int mode,
        int update, float batch_weight, int unbiased, int write_mean_lo) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
    for (ulong p = 0; p < parts; p++) {
        ulong t = c * parts + p;
        moments_merge(&n, &m, &m2, partials[t * 3 + 0], partials[t * 3 + 1], partials[t * 3 + 2]);
    }
    float var = m2 / (float) count;
    float k = shift_of(x[c * inner]);
    float mean = k + m;
    mean_out[c] = mean;
    if (write_mean_lo != 0) {
        /* k and mean are close, so k - mean is exact (Sterbenz); adding m gives what the rounding
         * of k + m lost, as long as the mean is not tiny against k. */
        mean_lo_out[c] = (k - mean) + m;
    }
    inv_out[c] = inv_std_of(mode, var, eps);
    if (update != 0) {
        float v = unbiased != 0 ? m2 / (float) (count - 1) : var;
        run_mean_out[c] = run_mean_in[c] * (1.0f - batch_weight) + mean * batch_weight;
        run_var_out[c] = run_var_in[c] * (1.0f - batch_weight) + v * batch_weight;
    }
}

/* Moments only (for merging across devices): mean and M2 per channel, merged in a fixed order. */
__kernel void channel_moments(const __global float *x, const __global float *partials, __global float *mean_out,
        __global float *m2_out, ulong channels, ulong inner, ulong parts) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
    for (ulong p = 0; p < parts; p++) {
        ulong t = c * parts + p;
        moments_merge(&n, &m, &m2, partials[t * 3 + 0], partials[t * 3 + 1], partials[t * 3 + 2]);
    }
    mean_out[c] = shift_of(x[c * inner]) + m;
    m2_out[c] = m2;
}

__kernel void channel_inv_std(const __global float *var, __global float *inv_out, ulong channels, float eps,
        int mode) {
    ulong c = get_global_id(0);
    if (c < channels) {
        inv_out[c] = inv_std_of(mode, var[c], eps);
    }
}

/* NDRange (inner, outer * channels): one work-item per element, channel from the segment index. */
__kernel void channel_apply(const __global float *x, const __global float *mean, const __global float *mean_lo,
        const __global float *inv, const __global float *scale, const __global float *bias, __global float *y,
        ulong channels, ulong inner, int flags) {
    ulong s = get_global_id(0);
    ulong seg = get_global_id(1);
    ulong c = seg % channels;
    ulong i = seg * inner + s;
    float w = (flags & HAS_SCALE) != 0 ? scale[c] : 1.0f;
    float b = (flags & HAS_BIAS) != 0 ? bias[c] : 0.0f;
    float lo = (flags & HAS_MEAN_LO) != 0 ? mean_lo[c] : 0.0f;
    y[i] = ((x[i] - mean[c]) - lo) * inv[c] * w + b;
}
