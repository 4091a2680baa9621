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

/* One work-item per row, walking its segments (see row_layout). */
__kernel void row_backward_serial(const __global real_t *dy, const __global real_t *x,
        const __global param_t *scale, const __global acc_t *mean, const __global acc_t *inv, __global real_t *dx,
        ROW_LAYOUT_ARGS, int rms, int has_scale) {
    ulong row = get_global_id(0);
    if (row >= rows) {
        return;
    }
    const row_layout l = ROW_LAYOUT_INIT;
    ulong base = row_base(&l, row);
    ulong len = cols / segs;
    ulong aff_base = row_group(&l, row) * cpg;
    acc_t mu = rms != 0 ? ZERO : mean[row];
    acc_t is = inv[row];
    acc_t sg = ZERO, sg_c = ZERO, sgx = ZERO, sgx_c = ZERO;
    for (ulong i = 0; i < segs; i++) {
        ulong off = base + i * seg_stride;
        for (ulong p = 0; p < len; p++) {
            acc_t w = has_scale != 0 ? LOADP(scale, aff_base + p / spatial) : ONE;
            acc_t g = LOADX(dy, off + p) * w;
            kahan_add(&sg, &sg_c, g);
            kahan_add(&sgx, &sgx_c, g * ((LOADX(x, off + p) - mu) * is));
        }
    }
    acc_t mean_g = rms != 0 ? ZERO : sg / (acc_t) cols;
    acc_t mean_gx = sgx / (acc_t) cols;
    for (ulong i = 0; i < segs; i++) {
        ulong off = base + i * seg_stride;
        for (ulong p = 0; p < len; p++) {
            acc_t w = has_scale != 0 ? LOADP(scale, aff_base + p / spatial) : ONE;
            acc_t xhat = (LOADX(x, off + p) - mu) * is;
            STOREX(dx, off + p, is * (LOADX(dy, off + p) * w - mean_g - xhat * mean_gx));
        }
    }
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
    acc_t sd = ZERO, sd_c = ZERO, sdx = ZERO, sdx_c = ZERO;
    ulong v = begin;
    while (v < end) {
        ulong o = v / inner;
        ulong s = v - o * inner;
        ulong len = min(inner - s, end - v);
        ulong si = STAT_INDEX(o, c);
        acc_t mu = rms != 0 ? ZERO : mean[si];
        acc_t is = inv[si];
        ulong off = (o * channels + c) * inner + s;
        for (ulong j = 0; j < len; j++) {
            acc_t d = LOADX(dy, off + j);
            kahan_add(&sd, &sd_c, d);
            kahan_add(&sdx, &sdx_c, d * ((LOADX(x, off + j) - mu) * is));
        }
        v += len;
    }
    partials[t * 2 + 0] = sdx;
    partials[t * 2 + 1] = sd;
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
