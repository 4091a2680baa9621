package org.normcl.jvm;

import java.util.Locale;

import org.normcl.HalfFloats;
import org.normcl.backend.StatMode;

/**
 * The inner loops of the Java backend: reductions over one run of contiguous values and the
 * elementwise normalization of a range. Two implementations: {@link VectorRowKernels} (the Vector
 * API, {@code jdk.incubator.vector}, when the JVM was started with
 * {@code --add-modules jdk.incubator.vector}) and {@link ScalarRowKernels} (plain loops with several
 * independent accumulators, which the JIT keeps in registers, and elementwise loops it vectorizes).
 *
 * <p>An instance is used by one thread at a time (it may hold scratch space): call
 * {@link #fresh()} for each task. Every reduction adds its values in an order fixed by the
 * implementation and the run length only, so a result never depends on threads or scheduling.
 *
 * <p>Arithmetic is float32 within a run (at most {@link #RUN} values), exactly as the OpenCL
 * kernels do; callers merge runs in double precision ({@link Moments}).
 */
abstract class RowKernels {
    /** Values per run: small enough that the second pass over a run hits the L1 cache. */
    static final int RUN = 1024;

    /** System property: {@code false} forces the scalar kernels even when the Vector API is present. */
    static final String VECTOR_PROPERTY = "normcl.vector";

    /**
     * System property: the Vector API kernels' width in bits (128, 256 or 512); default the JVM's
     * preferred width, at most 256 bits (VectorRowKernels.DEFAULT_MAX_BITS says why).
     */
    static final String VECTOR_BITS_PROPERTY = "normcl.vector.bits";

    /** Whether the JVM compiles {@code Math.fma} to a fused multiply-add instruction (HotSpot's UseFMA). */
    static final boolean HAS_FMA = hasFma();

    private static final RowKernels BEST = pickBest();

    private static boolean hasFma() {
        try {
            return Boolean.parseBoolean(java.lang.management.ManagementFactory
                    .getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class).getVMOption("UseFMA")
                    .getValue());
        } catch (RuntimeException | LinkageError e) {
            return true; // not HotSpot, or no jdk.management: assume a CPU of this century
        }
    }

    /** @return the fastest kernels this JVM offers (a prototype: call {@link #fresh()} per task) */
    static RowKernels best() {
        return BEST;
    }

    /** @return the scalar kernels */
    static RowKernels scalar() {
        return new ScalarRowKernels();
    }

    /** @return the Vector API kernels, or null when the module is absent or unusable */
    static RowKernels vectorOrNull() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            return null;
        }
        try {
            RowKernels k = (RowKernels) Class.forName("org.normcl.jvm.VectorRowKernels").getDeclaredConstructor()
                    .newInstance();
            // Fewer than 4 lanes (no SIMD), or no FMA instruction, would run the Vector API's slow
            // Java fallbacks.
            return k.lanes() >= 4 && HAS_FMA ? k : null;
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            return null;
        }
    }

    private static RowKernels pickBest() {
        String p = System.getProperty(VECTOR_PROPERTY, "true").trim().toLowerCase(Locale.ROOT);
        if (!p.equals("false")) {
            RowKernels v = vectorOrNull();
            if (v != null) {
                return v;
            }
        }
        return new ScalarRowKernels();
    }

    /**
     * Turns a variance (or mean square) into the inverse scale, exactly as {@code FloatKernels.invStd}
     * and the OpenCL kernels' {@code inv_std_of} do: the statistic is rounded to float32 first.
     */
    static float invStd(StatMode mode, double varianceOrMeanSquare, float epsilon) {
        double v = (float) varianceOrMeanSquare;
        if (mode == StatMode.MEAN_VAR_EPS_OUTSIDE) {
            return (float) (1.0 / (Math.sqrt(v) + epsilon));
        }
        return (float) (1.0 / Math.sqrt(v + epsilon));
    }

    /** @return a new instance of the same implementation, for one task */
    abstract RowKernels fresh();

    /** @return a short name for logs and benchmark reports, e.g. {@code vector-8} or {@code scalar} */
    abstract String name();

    /** @return float lanes per vector (1 for the scalar kernels) */
    abstract int lanes();

    // ------------------------------------------------------------------ reductions (n <= RUN)

    /** @return the float32 sum of {@code a[i] - k} over {@code [off, off + n)} */
    abstract float sumShifted(float[] a, int off, int n, float k);

    /** @return the float32 sum of {@code ((a[i] - k) - m)^2} over {@code [off, off + n)} (fused multiply-adds) */
    abstract float sumSquaredDeviations(float[] a, int off, int n, float k, float m);

    /** @return the float32 sum of {@code a[i]^2} over {@code [off, off + n)} */
    abstract float sumSquares(float[] a, int off, int n);

    /**
     * One pass over {@code [off, off + n)}: returns the float32 sum of {@code d = a[i] - k} and leaves
     * the sum of {@code d^2} (fused multiply-adds) in {@link #squares}. The caller turns the two into
     * the run's squared deviations and checks the cancellation ({@link Moments#mergeRunOnePass}).
     */
    abstract float sumAndSquaresShifted(float[] a, int off, int n, float k);

    /** The sum of squares left by the last {@link #sumAndSquaresShifted} (or its fused form). */
    float squares;

    // ------------------------------------------------------------------ elementwise (any n)

    /**
     * {@code y = fma(((x - k) - m) * inv, w[a..], b[a..])} over {@code [off, off + n)}, the affine index
     * starting at {@code aoff}. Without a scale, callers pass {@link RowNorm#ones} ({@code v * 1} is
     * exactly {@code v}); without a bias, null, which gives exactly {@code fma(v, w, -0.0f)}, that is
     * {@code v * w}.
     */
    abstract void normalizeAffine(float[] x, float[] y, int off, int n, float k, float m, float inv, float[] w,
            float[] b, int aoff);

    /** {@code y = fma(((x - k) - m) * inv, w, b)} with one {@code w} and {@code b} for the range. */
    abstract void normalizeUniform(float[] x, float[] y, int off, int n, float k, float m, float inv, float w,
            float b);

    // ------------------------------------------------------------------ 16-bit conversions

    /**
     * {@code f[fOff + i]} = the float32 value of the 16-bit {@code bits[bitsOff + i]} (float16 when
     * {@code half}, else bfloat16) for i in {@code [0, n)}, as {@link HalfFloats} converts one value.
     * Stateless: callable on the shared {@link #best()} instance from any thread.
     */
    void widen(short[] bits, int bitsOff, float[] f, int fOff, int n, boolean half) {
        for (int i = 0; i < n; i++) {
            f[fOff + i] = half ? HalfFloats.halfToFloat(bits[bitsOff + i]) : HalfFloats.bfloat16ToFloat(bits[bitsOff + i]);
        }
    }

    /**
     * {@code bits[bitsOff + i]} = {@code f[fOff + i]} rounded to nearest even (float16 when
     * {@code half}, else bfloat16) for i in {@code [0, n)}, as {@link HalfFloats} rounds one value.
     * Stateless.
     */
    void round(float[] f, int fOff, short[] bits, int bitsOff, int n, boolean half) {
        for (int i = 0; i < n; i++) {
            bits[bitsOff + i] = half ? HalfFloats.floatToHalf(f[fOff + i]) : HalfFloats.floatToBfloat16(f[fOff + i]);
        }
    }

    // ------------------------------------------------------------------ fused: normalize one row, reduce the next

    /**
     * {@link #normalizeAffine} over {@code [off, off + n)} while reading the next row's run: returns
     * {@code sumSquares(x, next, n)}, bit for bit. While this row is normalized from cache, the next
     * one streams in from memory, so memory never waits for arithmetic.
     */
    abstract float normalizeAffineSumSquaresNext(float[] x, float[] y, int off, int n, float k, float m, float inv,
            float[] w, float[] b, int aoff, int next);

    /**
     * {@link #normalizeAffine} over {@code [aOff, aOff + n)} (the affine index at {@code aoff}) while
     * reading another run: returns {@code sumAndSquaresShifted(x, sOff, n, ks)} and sets
     * {@link #squares}, bit for bit. The statistics' run streams in from memory while the other run
     * is normalized from cache.
     */
    abstract float normalizeAffineSumAndSquaresNext(float[] x, float[] y, int aOff, int n, float k, float m,
            float inv, float[] w, float[] b, int aoff, int sOff, float ks);

    /**
     * {@link #normalizeUniform} over {@code [aOff, aOff + n)} (one scale {@code w} and bias
     * {@code b}: a run inside one segment of group or instance norm) while reading another run:
     * returns {@code sumAndSquaresShifted(x, sOff, n, ks)} and sets {@link #squares}, bit for bit,
     * as {@link #normalizeAffineSumAndSquaresNext} does for per-column parameters.
     */
    float normalizeUniformSumAndSquaresNext(float[] x, float[] y, int aOff, int n, float k, float m, float inv,
            float w, float b, int sOff, float ks) {
        normalizeUniform(x, y, aOff, n, k, m, inv, w, b);
        return sumAndSquaresShifted(x, sOff, n, ks);
    }

    /**
     * Two passes in one loop over {@code n} values: reduces the squared deviations of
     * {@code [qOff, qOff + n)} from {@code (kq, mq)} (as {@link #sumSquaredDeviations}; the result is
     * left in {@link #squaredDeviations}) and returns the sum of {@code [sOff, sOff + n) - ks} (as
     * {@link #sumShifted}), both bit for bit.
     */
    abstract float squaredDeviationsSum(float[] x, int n, int qOff, float kq, float mq, int sOff, float ks);

    /** The squared deviations reduced by the last {@link #squaredDeviationsSum}. */
    float squaredDeviations;

    // ------------------------------------------------------------------ column-wise (per-column vectors)

    /**
     * One pass over a block of rows, per column: {@code sum[j] = sum over r < rows of d} and
     * {@code squares[j] = sum of d^2} (fused multiply-adds), {@code d = x[off + r*stride + j] - k[koff + j]},
     * for {@code j < width}, each column adding its rows in order from zero (both arrays are
     * overwritten). The caller checks the cancellation ({@link Moments#onePassM2}).
     */
    abstract void columnSumAndSquares(float[] x, int off, int stride, int rows, int width, float[] k, int koff,
            float[] sum, float[] squares);

    /**
     * The vector part of the column path's merge ({@code ChannelNorm.columnPartials}, one column per
     * channel): merges the block of {@code rows} rows whose float32 sums of {@code x - k} are
     * {@code sum[j]} and {@code squares[j]} into the columns' double moments {@code mean[c0 + j]},
     * {@code m2[c0 + j]} (after {@code count} rows; {@code f} and {@code g} are Chan's factors
     * {@code rows / (count + rows)} and {@code count * rows / (count + rows)}), from column
     * {@code from}, a group of columns at a time, while every column of a group takes the plain
     * path: its one-pass M2 does not cancel ({@link Moments#onePassM2}) and, after the first block,
     * its mean so far is finite. The arithmetic is {@code ChannelNorm.mergeColumn}'s, so the bits are
     * too.
     *
     * @return the first column not merged: the caller merges it, then calls again from the next
     */
    int mergeColumnBlock(float[] sum, float[] squares, int from, int to, int rows, double count, double f, double g,
            double[] mean, double[] m2, int c0) {
        return from;
    }

    /**
     * {@code y[off + j] = fma(((x[off + j] - mu[j]) - lo[j]) * is[j], w[j], b[j])} for {@code j < width}: one
     * row of a channel apply whose channels are columns.
     */
    abstract void columnApply(float[] x, float[] y, int off, int width, float[] mu, float[] lo, float[] is, float[] w,
            float[] b);

    // ------------------------------------------------------------------ float64 rows (any n)

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

    // ------------------------------------------------------------------ float64 backward (any n)

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

    // ------------------------------------------------------------------ float64 columns (channels as columns)

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
