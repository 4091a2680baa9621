/*
 * NormCL common helpers: statistic modes, Chan's merge of moments, and the run-wise two-pass
 * accumulation used by the work-item-per-row (CPU) kernels.
 *
 * Statistics are always computed stably: a run of at most RUN contiguous values is reduced with
 * two passes (sum, then sum of squared deviations from the run mean, while the run is still in
 * cache), and runs are combined with Chan et al.'s parallel formula. E[x^2] - E[x]^2 is never used.
 * Values are shifted by a reference value K of the same slice (its first finite element) before
 * they are accumulated: with a large common offset (1e4 on unit variance) the running means stay
 * small, so merging them does not round at ulp(offset) each time; the mean is K + shifted mean.
 *
 * OpenCL C 1.2 only: no double, no half, no atomics, no generic address space.
 */

#ifndef RUN
#define RUN 1024
#endif

/* Statistic modes (must match StatMode in the Java code, see ClKernels.modeCode). */
#define MODE_MEAN_VAR 0           /* mean + variance, eps inside the square root */
#define MODE_RMS 1                /* mean square only, eps inside the square root */
#define MODE_MEAN_VAR_EPS_OUT 2   /* mean + variance, eps added to the standard deviation (ONNX MVN) */

/* Flags of the row kernels. */
#define HAS_SCALE 1
#define HAS_BIAS 2
#define WRITE_MEAN 4
#define WRITE_INVSTD 8
#define SKIP_APPLY 16   /* statistics only: y is not written */
#define HAS_MEAN_LO 32  /* channel_apply: subtract the float32 mean's rounding error too */

/* The one place a variance (or mean square) becomes the inverse scale. */
inline float inv_std_of(int mode, float v, float eps) {
    return mode == MODE_MEAN_VAR_EPS_OUT ? 1.0f / (sqrt(v) + eps) : 1.0f / sqrt(v + eps);
}

/* Chan et al.: merge moments (nb, meanb, m2b) into (*n, *mean, *m2). Counts are floats: the
 * weights nb/n are ratios, and exact totals are passed separately where a division needs them. */
inline void moments_merge(float *n, float *mean, float *m2, float nb, float meanb, float m2b) {
    if (nb == 0.0f) {
        return;
    }
    if (*n == 0.0f) {
        *n = nb;
        *mean = meanb;
        *m2 = m2b;
        return;
    }
    float nt = *n + nb;
    if (!isfinite(*mean) || !isfinite(meanb)) {
        /* An infinity or NaN in the data: the mean is their sum (inf + finite = inf, inf - inf = NaN)
         * and the variance is undefined. The formula below would turn inf into NaN. */
        *mean += meanb;
        *m2 = NAN;
        *n = nt;
        return;
    }
    float delta = meanb - *mean;
    *mean += delta * (nb / nt);
    *m2 += m2b + delta * delta * (*n * (nb / nt));
    *n = nt;
}

/* Horizontal sum. Written through a private array: Oclgrind 21.10's uninitialized-value checker
 * crashes on the shufflevector that swizzles (v.lo + v.hi) compile to. */
inline float hsum8(float8 v) {
    float t[8];
    vstore8(v, 0, t);
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}

/* The shift of a slice whose first element is x0: x0 itself unless it is NaN or infinite. */
inline float shift_of(float x0) {
    return isfinite(x0) ? x0 : 0.0f;
}

/* Adds p[0 .. len) - k to the running moments, one run of at most RUN values at a time. */
inline void moments_add_contiguous(const __global float *p, ulong len, float k, float *n, float *mean, float *m2) {
    for (ulong r0 = 0; r0 < len; r0 += RUN) {
        uint m = (uint) min((ulong) RUN, len - r0);
        const __global float *q = p + r0;
        float8 acc = (float8) (0.0f);
        uint i = 0;
        for (; i + 8 <= m; i += 8) {
            acc += vload8(0, q + i) - k;
        }
        float s = hsum8(acc);
        for (; i < m; i++) {
            s += q[i] - k;
        }
        float run_mean = s / (float) m;
        float8 acc2 = (float8) (0.0f);
        i = 0;
        for (; i + 8 <= m; i += 8) {
            float8 d = (vload8(0, q + i) - k) - run_mean;
            acc2 += d * d;
        }
        float s2 = hsum8(acc2);
        for (; i < m; i++) {
            float d = (q[i] - k) - run_mean;
            s2 += d * d;
        }
        moments_merge(n, mean, m2, (float) m, run_mean, s2);
    }
}

/* Sum of squares of p[0 .. len), per run, with the runs' sums added by Kahan summation. */
inline float sum_squares_contiguous(const __global float *p, ulong len) {
    float total = 0.0f;
    float comp = 0.0f;
    for (ulong r0 = 0; r0 < len; r0 += RUN) {
        uint m = (uint) min((ulong) RUN, len - r0);
        const __global float *q = p + r0;
        float8 acc = (float8) (0.0f);
        uint i = 0;
        for (; i + 8 <= m; i += 8) {
            float8 v = vload8(0, q + i);
            acc += v * v;
        }
        float s = hsum8(acc);
        for (; i < m; i++) {
            s += q[i] * q[i];
        }
        float yk = s - comp;
        float t = total + yk;
        comp = (t - total) - yk;
        total = t;
    }
    return total;
}

/* Welford's update of one value (used by the work-group kernels, where each work-item sees a
 * strided subset). */
inline void moments_add_one(float *n, float *mean, float *m2, float v) {
    *n += 1.0f;
    if (!isfinite(v) || !isfinite(*mean)) {
        *mean += v; /* as in moments_merge: keep an infinite mean infinite */
        *m2 = NAN;
        return;
    }
    float d = v - *mean;
    *mean += d / *n;
    *m2 += d * (v - *mean);
}

/* Tree-merges the work-group's moments in local memory; the result lands in slot 0.
 * The work-group size must be a power of two. Ends with a barrier. */
inline void moments_reduce_local(__local float *ln, __local float *lmean, __local float *lm2, uint lid, uint wg,
        float n, float mean, float m2) {
    ln[lid] = n;
    lmean[lid] = mean;
    lm2[lid] = m2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            float an = ln[lid], am = lmean[lid], a2 = lm2[lid];
            moments_merge(&an, &am, &a2, ln[lid + s], lmean[lid + s], lm2[lid + s]);
            ln[lid] = an;
            lmean[lid] = am;
            lm2[lid] = a2;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Kahan (compensated) addition of v to *sum, carrying the lost low-order part in *comp. */
inline void kahan_add(float *sum, float *comp, float v) {
    float y = v - *comp;
    float t = *sum + y;
    *comp = (t - *sum) - y;
    *sum = t;
}

/* Tree-sums two floats per work-item; the results land in slot 0. Ends with a barrier. */
inline void sum2_reduce_local(__local float *la, __local float *lb, uint lid, uint wg, float a, float b) {
    la[lid] = a;
    lb[lid] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            la[lid] += la[lid + s];
            lb[lid] += lb[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Tree-sums one float per work-item; the result lands in slot 0. Ends with a barrier. */
inline void sum_reduce_local(__local float *l, uint lid, uint wg, float v) {
    l[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            l[lid] += l[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}
