/*
 * Backward passes. With xhat = (x - mean) * inv (RMS: x * inv) and g = dy * w:
 *   row norms (layer, RMS, group, instance):  dx = inv * (g - mean(g) - xhat * mean(g * xhat))
 *                                             (RMS: no mean(g) term), means over the row;
 *   batch norm, training:   dx = w * inv * (dy - sum(dy)/M - xhat * sum(dy * xhat)/M) per channel;
 *   batch norm, inference:  dx = dy * w * inv (the running statistics are constants);
 *   parameters:             dScale[c] = sum dy * xhat, dBias[c] = sum dy over channel c.
 * The parameter gradients are reductions over the batch and are taken in two stages, per-part
 * partial sums then a fixed-order final pass, never with atomics: the same bits on every run.
 */

/* One work-item per row. Segments of `spatial` values share one affine entry. Kahan sums. */
__kernel void row_backward_serial(const __global float *dy, const __global float *x, const __global float *scale,
        const __global float *mean, const __global float *inv, __global float *dx, ulong rows, ulong cols,
        ulong groups, ulong cpg, ulong spatial, int rms, int has_scale) {
    ulong row = get_global_id(0);
    if (row >= rows) {
        return;
    }
    ulong base = (row % groups) * cpg;
    float mu = rms != 0 ? 0.0f : mean[row];
    float is = inv[row];
    const __global float *dyr = dy + row * cols;
    const __global float *xr = x + row * cols;
    __global float *dxr = dx + row * cols;
    float sg = 0.0f, sg_c = 0.0f, sgx = 0.0f, sgx_c = 0.0f;
    ulong i = 0;
    for (ulong c = 0; c < cpg; c++) {
        float w = has_scale != 0 ? scale[base + c] : 1.0f;
        for (ulong s = 0; s < spatial; s++, i++) {
            float g = dyr[i] * w;
            kahan_add(&sg, &sg_c, g);
            kahan_add(&sgx, &sgx_c, g * ((xr[i] - mu) * is));
        }
    }
    float mean_g = rms != 0 ? 0.0f : sg / (float) cols;
    float mean_gx = sgx / (float) cols;
    i = 0;
    for (ulong c = 0; c < cpg; c++) {
        float w = has_scale != 0 ? scale[base + c] : 1.0f;
        for (ulong s = 0; s < spatial; s++, i++) {
            float xhat = (xr[i] - mu) * is;
            dxr[i] = is * (dyr[i] * w - mean_g - xhat * mean_gx);
        }
    }
}

/* One work-group per row; local memory: two arrays of get_local_size(0) floats (power of two). */
__kernel void row_backward_group(const __global float *dy, const __global float *x, const __global float *scale,
        const __global float *mean, const __global float *inv, __global float *dx, ulong rows, ulong cols,
        ulong groups, ulong cpg, ulong spatial, int rms, int has_scale, __local float *la, __local float *lb) {
    ulong row = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    ulong base = (row % groups) * cpg;
    float mu = rms != 0 ? 0.0f : mean[row];
    float is = inv[row];
    const __global float *dyr = dy + row * cols;
    const __global float *xr = x + row * cols;
    __global float *dxr = dx + row * cols;
    float sg = 0.0f, sg_c = 0.0f, sgx = 0.0f, sgx_c = 0.0f;
    for (ulong c = lid; c < cols; c += wg) {
        float w = has_scale != 0 ? scale[base + c / spatial] : 1.0f;
        float g = dyr[c] * w;
        kahan_add(&sg, &sg_c, g);
        kahan_add(&sgx, &sgx_c, g * ((xr[c] - mu) * is));
    }
    sum2_reduce_local(la, lb, lid, wg, sg, sgx);
    float mean_g = rms != 0 ? 0.0f : la[0] / (float) cols;
    float mean_gx = lb[0] / (float) cols;
    for (ulong c = lid; c < cols; c += wg) {
        float w = has_scale != 0 ? scale[base + c / spatial] : 1.0f;
        float xhat = (xr[c] - mu) * is;
        dxr[c] = is * (dyr[c] * w - mean_g - xhat * mean_gx);
    }
}

/* Stage 1 for inner == 1 (layer/RMS norm: columns of a (rows, cols) matrix). NDRange
 * (channels, parts): work-item (c, part) sums column c over its block of rows; neighbouring
 * work-items read neighbouring addresses. */
__kernel void affine_grad_cols(const __global float *dy, const __global float *x, const __global float *mean,
        const __global float *inv, __global float *partials, ulong outer, ulong channels, ulong parts,
        ulong stats_per_outer, ulong channels_per_stat, int rms) {
    ulong c = get_global_id(0);
    ulong part = get_global_id(1);
    if (c >= channels) {
        return;
    }
    ulong o0 = outer * part / parts;
    ulong o1 = outer * (part + 1) / parts;
    float sd = 0.0f, sd_c = 0.0f, sdx = 0.0f, sdx_c = 0.0f;
    for (ulong o = o0; o < o1; o++) {
        ulong si = o * stats_per_outer + c / channels_per_stat;
        float mu = rms != 0 ? 0.0f : mean[si];
        ulong i = o * channels + c;
        float d = dy[i];
        kahan_add(&sd, &sd_c, d);
        kahan_add(&sdx, &sdx_c, d * ((x[i] - mu) * inv[si]));
    }
    ulong t = c * parts + part;
    partials[t * 2 + 0] = sdx;
    partials[t * 2 + 1] = sd;
}

/* Stage 1 for inner > 1, one work-item per (channel, part) over contiguous segments. */
__kernel void affine_grad_serial(const __global float *dy, const __global float *x, const __global float *mean,
        const __global float *inv, __global float *partials, ulong outer, ulong channels, ulong inner, ulong parts,
        ulong stats_per_outer, ulong channels_per_stat, int rms) {
    ulong t = get_global_id(0);
    if (t >= channels * parts) {
        return;
    }
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    float sd = 0.0f, sd_c = 0.0f, sdx = 0.0f, sdx_c = 0.0f;
    ulong v = begin;
    while (v < end) {
        ulong o = v / inner;
        ulong s = v - o * inner;
        ulong len = min(inner - s, end - v);
        ulong si = o * stats_per_outer + c / channels_per_stat;
        float mu = rms != 0 ? 0.0f : mean[si];
        ulong off = (o * channels + c) * inner + s;
        float is = inv[si];
        for (ulong j = 0; j < len; j++) {
            float d = dy[off + j];
            kahan_add(&sd, &sd_c, d);
            kahan_add(&sdx, &sdx_c, d * ((x[off + j] - mu) * is));
        }
        v += len;
    }
    partials[t * 2 + 0] = sdx;
    partials[t * 2 + 1] = sd;
}

/* Stage 1 for inner > 1 on GPUs: one work-group per (channel, part); two local arrays. */
__kernel void affine_grad_group(const __global float *dy, const __global float *x, const __global float *mean,
        const __global float *inv, __global float *partials, ulong outer, ulong channels, ulong inner, ulong parts,
        ulong stats_per_outer, ulong channels_per_stat, int rms, __local float *la, __local float *lb) {
    ulong t = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    ulong c = t / parts;
    ulong part = t - c * parts;
    ulong per_channel = outer * inner;
    ulong begin = per_channel * part / parts;
    ulong end = per_channel * (part + 1) / parts;
    float sd = 0.0f, sd_c = 0.0f, sdx = 0.0f, sdx_c = 0.0f;
    for (ulong v = begin + lid; v < end; v += wg) {
        ulong o = v / inner;
        ulong si = o * stats_per_outer + c / channels_per_stat;
        float mu = rms != 0 ? 0.0f : mean[si];
        ulong i = channel_offset(v, c, channels, inner);
        float d = dy[i];
        kahan_add(&sd, &sd_c, d);
        kahan_add(&sdx, &sdx_c, d * ((x[i] - mu) * inv[si]));
    }
    sum2_reduce_local(la, lb, lid, wg, sdx, sd);
    if (lid == 0) {
        partials[t * 2 + 0] = la[0];
        partials[t * 2 + 1] = lb[0];
    }
}

/* Stage 2: per channel, the parts in order. */
__kernel void affine_grad_finalize(const __global float *partials, __global float *dscale, __global float *dbias,
        ulong channels, ulong parts, int write_scale, int write_bias) {
    ulong c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    float s = 0.0f, s_c = 0.0f, b = 0.0f, b_c = 0.0f;
    for (ulong p = 0; p < parts; p++) {
        ulong t = c * parts + p;
        kahan_add(&s, &s_c, partials[t * 2 + 0]);
        kahan_add(&b, &b_c, partials[t * 2 + 1]);
    }
    if (write_scale != 0) {
        dscale[c] = s;
    }
    if (write_bias != 0) {
        dbias[c] = b;
    }
}

/* Batch-norm dx, NDRange (inner, outer * channels). */
__kernel void channel_backward(const __global float *dy, const __global float *x, const __global float *mean,
        const __global float *inv, const __global float *scale, const __global float *sum_dy_xhat,
        const __global float *sum_dy, __global float *dx, ulong channels, ulong inner, float count, int training,
        int has_scale) {
    ulong s = get_global_id(0);
    ulong seg = get_global_id(1);
    ulong c = seg % channels;
    ulong i = seg * inner + s;
    float is = inv[c];
    float k = (has_scale != 0 ? scale[c] : 1.0f) * is;
    if (training != 0) {
        float xhat = (x[i] - mean[c]) * is;
        dx[i] = k * (dy[i] - sum_dy[c] / count - xhat * (sum_dy_xhat[c] / count));
    } else {
        dx[i] = dy[i] * k;
    }
}
