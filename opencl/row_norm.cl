/*
 * Row normalization: layer, RMS, group, instance and trailing-axis mean-variance normalization.
 * X is viewed as (rows, cols); each row is normalized over its cols values, then an optional
 * affine transform is applied whose index is (row % groups) * cpg + col / spatial (see RowNormPlan).
 *
 * Two strategies, chosen by device type in Java (ClKernels):
 *   row_norm_serial  one work-item per row: a plain vectorizable loop. Best on CPU drivers, where
 *                    barriers are expensive (10-100x slower on PoCL than this).
 *   row_norm_group   one work-group per row: strided Welford per work-item, tree merge in local
 *                    memory, then a strided (coalesced) apply. For GPUs.
 * Both handle any row length (1 .. more than a work-group, 65537 and beyond) and never keep a
 * row in local memory, so no size is limited by local memory.
 */

/* y = (((x - k) - m) * inv) * w + b over one row, for work-item lid of wg (serial: 0 of 1).
 * The mean is k + m (shift and shifted mean): subtracting them one after the other keeps the
 * digits a single float32 mean would round away when the values share a large offset. */
inline void apply_row(const __global float *xr, __global float *yr, const __global float *scale,
        const __global float *bias, ulong cols, ulong affine_base, ulong spatial, float k, float mean, float inv,
        int flags, uint lid, uint wg) {
    const bool has_scale = (flags & HAS_SCALE) != 0;
    const bool has_bias = (flags & HAS_BIAS) != 0;
    if (spatial == 1) {
        for (ulong c = lid; c < cols; c += wg) {
            float v = ((xr[c] - k) - mean) * inv;
            if (has_scale) {
                v *= scale[affine_base + c];
            }
            if (has_bias) {
                v += bias[affine_base + c];
            }
            yr[c] = v;
        }
    } else if (wg == 1) {
        /* Serial: one affine entry per segment of `spatial` contiguous values. */
        ulong segments = cols / spatial;
        for (ulong g = 0; g < segments; g++) {
            float w = has_scale ? scale[affine_base + g] : 1.0f;
            float b = has_bias ? bias[affine_base + g] : 0.0f;
            const __global float *xs = xr + g * spatial;
            __global float *ys = yr + g * spatial;
            for (ulong s = 0; s < spatial; s++) {
                ys[s] = ((xs[s] - k) - mean) * inv * w + b;
            }
        }
    } else {
        for (ulong c = lid; c < cols; c += wg) {
            ulong g = c / spatial;
            float w = has_scale ? scale[affine_base + g] : 1.0f;
            float b = has_bias ? bias[affine_base + g] : 0.0f;
            yr[c] = ((xr[c] - k) - mean) * inv * w + b;
        }
    }
}

__kernel void row_norm_serial(const __global float *x, const __global float *scale, const __global float *bias,
        __global float *y, __global float *mean_out, __global float *inv_out, ulong rows, ulong cols, ulong groups,
        ulong cpg, ulong spatial, float eps, int mode, int flags) {
    ulong row = get_global_id(0);
    if (row >= rows) {
        return;
    }
    const __global float *xr = x + row * cols;
    float k = 0.0f; /* shift; RMS takes none */
    float m = 0.0f; /* mean of x - k */
    float inv;
    if (mode == MODE_RMS) {
        inv = inv_std_of(mode, sum_squares_contiguous(xr, cols) / (float) cols, eps);
    } else {
        float n = 0.0f, m2 = 0.0f;
        k = shift_of(xr[0]);
        moments_add_contiguous(xr, cols, k, &n, &m, &m2);
        inv = inv_std_of(mode, m2 / (float) cols, eps);
    }
    if ((flags & WRITE_MEAN) != 0) {
        mean_out[row] = k + m;
    }
    if ((flags & WRITE_INVSTD) != 0) {
        inv_out[row] = inv;
    }
    if ((flags & SKIP_APPLY) == 0) {
        apply_row(xr, y + row * cols, scale, bias, cols, (row % groups) * cpg, spatial, k, m, inv, flags, 0, 1);
    }
}

/* Local memory: three arrays of get_local_size(0) floats. The work-group size is a power of two. */
__kernel void row_norm_group(const __global float *x, const __global float *scale, const __global float *bias,
        __global float *y, __global float *mean_out, __global float *inv_out, ulong rows, ulong cols, ulong groups,
        ulong cpg, ulong spatial, float eps, int mode, int flags, __local float *ln, __local float *lmean,
        __local float *lm2) {
    ulong row = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    const __global float *xr = x + row * cols;
    __local float *stats = ln; /* after the reduction: stats[0] = shifted mean, stats[1] = inv */
    float k = mode == MODE_RMS ? 0.0f : shift_of(xr[0]);
    if (mode == MODE_RMS) {
        float s = 0.0f;
        for (ulong c = lid; c < cols; c += wg) {
            float v = xr[c];
            s += v * v;
        }
        sum_reduce_local(lm2, lid, wg, s);
        if (lid == 0) {
            stats[0] = 0.0f;
            stats[1] = inv_std_of(mode, lm2[0] / (float) cols, eps);
        }
    } else {
        float n = 0.0f, m = 0.0f, m2 = 0.0f;
        for (ulong c = lid; c < cols; c += wg) {
            moments_add_one(&n, &m, &m2, xr[c] - k);
        }
        moments_reduce_local(ln, lmean, lm2, lid, wg, n, m, m2);
        if (lid == 0) {
            float mean = lmean[0];
            float var = lm2[0] / (float) cols;
            stats[0] = mean;
            stats[1] = inv_std_of(mode, var, eps);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float mean = stats[0];
    float inv = stats[1];
    if (lid == 0) {
        if ((flags & WRITE_MEAN) != 0) {
            mean_out[row] = k + mean;
        }
        if ((flags & WRITE_INVSTD) != 0) {
            inv_out[row] = inv;
        }
    }
    if ((flags & SKIP_APPLY) == 0) {
        apply_row(xr, y + row * cols, scale, bias, cols, (row % groups) * cpg, spatial, k, mean, inv, flags, lid, wg);
    }
}

/* Normalization with given statistics (e.g. moments merged across devices). NDRange (cols, rows);
 * mean is not read for RMS (flags without WRITE_MEAN are irrelevant here: rms says so). */
__kernel void row_apply(const __global float *x, const __global float *mean, const __global float *inv,
        const __global float *scale, const __global float *bias, __global float *y, ulong cols, ulong groups,
        ulong cpg, ulong spatial, int rms, int flags) {
    ulong c = get_global_id(0);
    ulong row = get_global_id(1);
    ulong a = (row % groups) * cpg + c / spatial;
    ulong i = row * cols + c;
    float mu = rms != 0 ? 0.0f : mean[row];
    float w = (flags & HAS_SCALE) != 0 ? scale[a] : 1.0f;
    float b = (flags & HAS_BIAS) != 0 ? bias[a] : 0.0f;
    y[i] = (x[i] - mu) * inv[row] * w + b;
}
