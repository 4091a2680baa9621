package org.normcl.jvm;

/**
 * The Java backend's float64 kernels ({@link DoubleKernels} runs on them): sums over contiguous
 * values, normalization, the backward terms and column-wise sums, in double precision. This class
 * is the scalar implementation; {@link VectorF64Kernels} (loaded only where the Vector API is
 * present and has 4-lane double vectors) overrides every kernel with the same operations in the
 * same order, so float64 results are the same bits with or without the Vector API. An instance
 * holds scratch space: one per task ({@link #fresh()}).
 */
class F64Kernels {
    private static final F64Kernels BEST = pickBest();

    /** @return the fastest float64 kernels this JVM offers (a prototype: call {@link #fresh()} per task) */
    static F64Kernels best() {
        return BEST;
    }

    /** @return the scalar kernels */
    static F64Kernels scalar() {
        return new F64Kernels();
    }

    /**
     * @return the Vector API kernels, or null where the float32 kernels are not on the Vector API
     *     (module absent or unusable) or its doubles at their width are not 4 lanes
     */
    static F64Kernels vectorOrNull() {
        if (RowKernels.vectorOrNull() == null) {
            return null;
        }
        try {
            F64Kernels k = (F64Kernels) Class.forName("org.normcl.jvm.VectorF64Kernels").getDeclaredConstructor()
                    .newInstance();
            return k.lanes() == 4 ? k : null;
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            return null;
        }
    }

    /** The Vector API kernels when the float32 kernels are (same switch, -Dnormcl.vector=false), else scalar. */
    private static F64Kernels pickBest() {
        F64Kernels v = RowKernels.best().lanes() > 1 ? vectorOrNull() : null;
        return v != null ? v : scalar();
    }

    /** @return a new instance of the same implementation, for one task */
    F64Kernels fresh() {
        return new F64Kernels();
    }

    /** @return a short name for messages, e.g. {@code vector-4} or {@code scalar} */
    String name() {
        return lanes() == 1 ? "scalar" : "vector-" + lanes();
    }

    /** @return double lanes per vector (1 for the scalar kernels) */
    int lanes() {
        return 1;
    }

    // ------------------------------------------------------------------ rows (any n)

    /**
     * Accumulators of the float64 sums: value t of a range goes into accumulator t % 16, the last
     * {@code n % 16} values into the first, and the accumulators add up in {@link #combineF64}'s
     * tree. Every implementation keeps this order, so float64 results are the same bits with or
     * without the Vector API (sixteen, so that four 4-lane vectors hide the adder's latency).
     */
    static final int F64_ACCUMULATORS = 16;

    /** @return the sum of the {@link #F64_ACCUMULATORS} accumulators, in a fixed pairwise tree */
    static double combineF64(double s0, double s1, double s2, double s3, double s4, double s5, double s6, double s7,
            double s8, double s9, double s10, double s11, double s12, double s13, double s14, double s15) {
        double lo = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
        double hi = ((s8 + s9) + (s10 + s11)) + ((s12 + s13) + (s14 + s15));
        return lo + hi;
    }

    /** @return the float64 sum of {@code x[i] - k} over {@code [off, off + n)}, in the order of {@link #F64_ACCUMULATORS} */
    double sumShifted(double[] x, int off, int n, double k) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        double s8 = 0, s9 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0, s14 = 0, s15 = 0;
        int end = off + n;
        int t = off;
        for (int bound = end - n % F64_ACCUMULATORS; t < bound; t += F64_ACCUMULATORS) {
            s0 += x[t] - k;
            s1 += x[t + 1] - k;
            s2 += x[t + 2] - k;
            s3 += x[t + 3] - k;
            s4 += x[t + 4] - k;
            s5 += x[t + 5] - k;
            s6 += x[t + 6] - k;
            s7 += x[t + 7] - k;
            s8 += x[t + 8] - k;
            s9 += x[t + 9] - k;
            s10 += x[t + 10] - k;
            s11 += x[t + 11] - k;
            s12 += x[t + 12] - k;
            s13 += x[t + 13] - k;
            s14 += x[t + 14] - k;
            s15 += x[t + 15] - k;
        }
        for (; t < end; t++) {
            s0 += x[t] - k;
        }
        return combineF64(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15);
    }

    /**
     * @return the float64 sum of {@code d * d}, {@code d = (x[i] - k) - m} (a product, then a sum: no
     *     fused multiply-add), over {@code [off, off + n)} in the order of {@link #F64_ACCUMULATORS}
     */
    double sumSquaredDeviations(double[] x, int off, int n, double k, double m) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        double s8 = 0, s9 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0, s14 = 0, s15 = 0;
        int end = off + n;
        int t = off;
        for (int bound = end - n % F64_ACCUMULATORS; t < bound; t += F64_ACCUMULATORS) {
            s0 += square((x[t] - k) - m);
            s1 += square((x[t + 1] - k) - m);
            s2 += square((x[t + 2] - k) - m);
            s3 += square((x[t + 3] - k) - m);
            s4 += square((x[t + 4] - k) - m);
            s5 += square((x[t + 5] - k) - m);
            s6 += square((x[t + 6] - k) - m);
            s7 += square((x[t + 7] - k) - m);
            s8 += square((x[t + 8] - k) - m);
            s9 += square((x[t + 9] - k) - m);
            s10 += square((x[t + 10] - k) - m);
            s11 += square((x[t + 11] - k) - m);
            s12 += square((x[t + 12] - k) - m);
            s13 += square((x[t + 13] - k) - m);
            s14 += square((x[t + 14] - k) - m);
            s15 += square((x[t + 15] - k) - m);
        }
        for (; t < end; t++) {
            s0 += square((x[t] - k) - m);
        }
        return combineF64(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15);
    }

    private static double square(double d) {
        return d * d;
    }

    /**
     * {@code y = ((x - k) - m) * inv}, times {@code scale[aoff + t]} when scale is not null, plus
     * {@code bias[aoff + t]} when bias is not null (separate roundings, no fused multiply-add), over
     * {@code [off, off + n)}.
     */
    void normalize(double[] x, double[] y, int off, int n, double k, double m, double inv, double[] scale,
            double[] bias, int aoff) {
        for (int t = 0; t < n; t++) {
            double v = ((x[off + t] - k) - m) * inv;
            if (scale != null) {
                v *= scale[aoff + t];
            }
            if (bias != null) {
                v += bias[aoff + t];
            }
            y[off + t] = v;
        }
    }

    /**
     * {@link #normalize} with one scale {@code w} and bias {@code b} for the range: {@code y = ((x - k)
     * - m) * inv * w + b}, a product then a sum. Without a scale or bias, callers pass 1 and -0.0,
     * which leave every value as it is.
     */
    void normalizeUniform(double[] x, double[] y, int off, int n, double k, double m, double inv, double w,
            double b) {
        for (int t = off; t < off + n; t++) {
            y[t] = ((x[t] - k) - m) * inv * w + b;
        }
    }

    // ------------------------------------------------------------------ backward (any n)

    /** @return {@code ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))}: the backward sums' tree */
    static double combineF64(double s0, double s1, double s2, double s3, double s4, double s5, double s6,
            double s7) {
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    }

    /** The second sum of the last {@link #backwardSums} call. */
    double backwardSecond;

    /**
     * @return the float64 sum of {@code g = dy * w[aoff + t]} ({@code dy} alone when w is null) over
     *     {@code [off, off + n)}, leaving the sum of {@code (g * (x - mu)) * is} in
     *     {@link #backwardSecond}; each sum in eight accumulators (value t into t % 8, the last
     *     {@code n % 8} into the first, combined by {@link #combineF64(double, double, double, double,
     *     double, double, double, double)}), the order of every implementation
     */
    double backwardSums(double[] dy, double[] x, double[] w, int off, int aoff, int n, double mu, double is) {
        double g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0;
        double q0 = 0, q1 = 0, q2 = 0, q3 = 0, q4 = 0, q5 = 0, q6 = 0, q7 = 0;
        int t = 0;
        for (int bound = n - n % 8; t < bound; t += 8) {
            int i = off + t;
            int a = aoff + t;
            double d0 = grad(dy, w, i, a);
            double d1 = grad(dy, w, i + 1, a + 1);
            double d2 = grad(dy, w, i + 2, a + 2);
            double d3 = grad(dy, w, i + 3, a + 3);
            double d4 = grad(dy, w, i + 4, a + 4);
            double d5 = grad(dy, w, i + 5, a + 5);
            double d6 = grad(dy, w, i + 6, a + 6);
            double d7 = grad(dy, w, i + 7, a + 7);
            g0 += d0;
            g1 += d1;
            g2 += d2;
            g3 += d3;
            g4 += d4;
            g5 += d5;
            g6 += d6;
            g7 += d7;
            q0 += d0 * (x[i] - mu) * is;
            q1 += d1 * (x[i + 1] - mu) * is;
            q2 += d2 * (x[i + 2] - mu) * is;
            q3 += d3 * (x[i + 3] - mu) * is;
            q4 += d4 * (x[i + 4] - mu) * is;
            q5 += d5 * (x[i + 5] - mu) * is;
            q6 += d6 * (x[i + 6] - mu) * is;
            q7 += d7 * (x[i + 7] - mu) * is;
        }
        for (; t < n; t++) {
            double d = grad(dy, w, off + t, aoff + t);
            g0 += d;
            q0 += d * (x[off + t] - mu) * is;
        }
        backwardSecond = combineF64(q0, q1, q2, q3, q4, q5, q6, q7);
        return combineF64(g0, g1, g2, g3, g4, g5, g6, g7);
    }

    /** @return {@code dy[i] * w[a]}, or {@code dy[i]} when w is null */
    static double grad(double[] dy, double[] w, int i, int a) {
        return w == null ? dy[i] : dy[i] * w[a];
    }

    /**
     * {@code dx = is * ((g - meanG) - ((x - mu) * is) * meanGx)}, {@code g} as in {@link #backwardSums},
     * over {@code [off, off + n)}.
     */
    void backwardDx(double[] dy, double[] x, double[] w, double[] dx, int off, int aoff, int n, double mu,
            double is, double meanG, double meanGx) {
        for (int t = 0; t < n; t++) {
            int i = off + t;
            dx[i] = is * ((grad(dy, w, i, aoff + t) - meanG) - (x[i] - mu) * is * meanGx);
        }
    }

    /**
     * The parameter-gradient terms of one row, per column: {@code s[soff + t] += (dy * (x - mu)) * is}
     * and {@code b[boff + t] += dy} for the values {@code [off, off + n)}.
     */
    void accumulateGrad(double[] dy, double[] x, int off, int n, double mu, double is, double[] s, int soff,
            double[] b, int boff) {
        for (int t = 0; t < n; t++) {
            double d = dy[off + t];
            s[soff + t] += d * (x[off + t] - mu) * is;
            b[boff + t] += d;
        }
    }

    // ------------------------------------------------------------------ columns (channels as columns)

    /** {@code s[j] += x[off + j] - k[j]} for {@code j < n}: one row's terms of column sums. */
    void columnShiftedSum(double[] x, int off, int n, double[] k, double[] s) {
        for (int j = 0; j < n; j++) {
            s[j] += x[off + j] - k[j];
        }
    }

    /** {@code q[j] += d * d}, {@code d = (x[off + j] - k[j]) - m[j]} (a product, then a sum), for {@code j < n}. */
    void columnSquaredDeviations(double[] x, int off, int n, double[] k, double[] m, double[] q) {
        for (int j = 0; j < n; j++) {
            double d = (x[off + j] - k[j]) - m[j];
            q[j] += d * d;
        }
    }

    /**
     * {@code y = ((x - mu[c]) - lo[c]) * is[c] * w[c] + b[c]} for the values {@code [off, off + n)}, value
     * j of channel {@code c0 + j}: one row of a channel apply whose channels are columns.
     */
    void normalizeColumns(double[] x, double[] y, int off, int n, int c0, double[] mu, double[] lo, double[] is,
            double[] w, double[] b) {
        for (int j = 0; j < n; j++) {
            int c = c0 + j;
            y[off + j] = ((x[off + j] - mu[c]) - lo[c]) * is[c] * w[c] + b[c];
        }
    }
}
