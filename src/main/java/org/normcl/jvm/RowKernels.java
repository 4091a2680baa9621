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

    /**
     * {@code a * b + c} as the plain-Java loops take it: fused (one rounding, as the vector kernels)
     * where the CPU has FMA, two roundings otherwise ({@code Math.fma} in software is slow).
     */
    static float fma(float a, float b, float c) {
        return HAS_FMA ? Math.fma(a, b, c) : a * b + c;
    }

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

    /**
     * Rows of one value {@code [off, off + n)}, row {@code off + i} taking affine entry {@code a + i}
     * ({@code w} and {@code b} null: the identity): {@code k = 0f + x} (the row's shift and mean),
     * {@code y = fma(((x - k) - 0f) * inv, w, b)} ({@code fma(v, 1f, -0.0f)} without parameters),
     * {@code mean = k} and {@code invOut = inv} where not null. Every value must be finite (the
     * caller takes the others). The same operations in every implementation, so the same bits.
     */
    void singleValues(float[] x, float[] y, int off, int n, float inv, float[] w, float[] b, int a, float[] mean,
            float[] invOut) {
        for (int i = 0; i < n; i++) {
            float v = x[off + i];
            float k = 0f + v;
            float u = ((v - k) - 0f) * inv;
            y[off + i] = w == null ? Math.fma(u, 1f, -0.0f) : Math.fma(u, w[a + i], b[a + i]);
            if (mean != null) {
                mean[off + i] = k;
            }
            if (invOut != null) {
                invOut[off + i] = inv;
            }
        }
    }

    // ------------------------------------------------------------------ rows of 2 to 64 values

    /**
     * The longest row {@link #smallRows} takes: 64 values, eight 8-lane vectors held in registers
     * (2026-11-28, docs/performance.md).
     */
    static final int SMALL_ROW_MAX = 64;

    /**
     * The arrays and constants of one {@link #smallRows} call: rows of {@code c} values, {@code c} a
     * power of two in [2, {@link #SMALL_ROW_MAX}], one affine entry per value. Read-only; built once
     * per rowNorm call and shared by its threads.
     */
    static final class SmallRows {
        /** Lanes of the widest vectors a kernel may use: the tiled parameters' period is at least this. */
        private static final int MAX_LANES = 16;

        final float[] x;
        final float[] y;
        /**
         * The scale and bias tiled: entry {@code p} is affine entry {@code p % entries}, for {@code p}
         * up to {@link #period} plus one block of rows ({@code MAX_LANES * c} entries), so that row r's
         * entries start at {@code (r * c) % period} and a block's vectors never wrap. Ones and
         * {@code -0.0f} stand for an absent scale and bias: {@code fma(v, 1, -0.0f)} is {@code v}.
         */
        final float[] w;
        final float[] b;
        final int period;
        final int c;
        final boolean rms;
        final boolean epsOutside;
        final float eps;
        /** 1 / c, exact (c is a power of two). */
        final float invC;
        /** May be null (and always is for RMS norm). */
        final float[] mean;
        /** May be null. */
        final float[] inv;

        /**
         * @param scale per affine entry, or null
         * @param bias per affine entry, or null
         * @param entries affine entries: row r takes entries {@code [(r * c) % entries, ... + c)}
         */
        SmallRows(float[] x, float[] y, float[] scale, float[] bias, int entries, int c, StatMode mode, float eps,
                float[] mean, float[] inv) {
            if (c < 2 || c > SMALL_ROW_MAX || Integer.bitCount(c) != 1 || entries % c != 0) {
                throw new IllegalArgumentException("rows of " + c + " values, " + entries + " affine entries");
            }
            this.x = x;
            this.y = y;
            this.c = c;
            // A multiple of the entries (so entry p is p % entries) of at least MAX_LANES, so that one
            // subtraction wraps an index advanced by a step of rows (at most max(L, c) entries).
            int p = entries * ((MAX_LANES + entries - 1) / entries);
            this.period = p;
            this.w = tile(scale, 1f, entries, p + MAX_LANES * c);
            this.b = tile(bias, -0.0f, entries, p + MAX_LANES * c);
            this.rms = mode == StatMode.RMS;
            this.epsOutside = mode == StatMode.MEAN_VAR_EPS_OUTSIDE;
            this.eps = eps;
            this.invC = 1f / c;
            this.mean = rms ? null : mean;
            this.inv = inv;
        }

        private static float[] tile(float[] a, float identity, int entries, int n) {
            float[] t = new float[n];
            for (int i = 0; i < n; i++) {
                t[i] = a == null ? identity : a[i % entries];
            }
            return t;
        }

        /** @return the first affine index of row {@code r} in {@link #w} and {@link #b} */
        int affine(int r) {
            return (int) ((long) r * c % period);
        }

        /** The inverse scale of a variance (or mean square) {@code v}, in float32 operations. */
        float invStd(float v) {
            return epsOutside ? 1f / ((float) Math.sqrt(v) + eps) : 1f / (float) Math.sqrt(v + eps);
        }
    }

    /**
     * Rows {@code [from, to)} of {@link SmallRows}: the statistics in float32 from the row's first
     * value as shift {@code k} ({@code d = x - k}; RMS norm: none), {@code m = T(d) / c},
     * {@code e = d - m}, {@code q = T(e * e)} (RMS norm: {@code T(x * x)}), where T is the halving
     * tree (level 1 adds value i and value i + c/2, and so on down to one), an order that does not
     * depend on the vector width; then {@code inv} from {@code q / c},
     * {@code y = fma(e * inv, w, b)}, {@code mean = k + m}. Every implementation does these
     * operations, so the bits are the same with any kernels, threads and block boundaries.
     *
     * <p>Stops at the first row whose sum, mean or sum of squares is not finite (a value that is
     * not, or float32 overflow), writing nothing of it: the caller takes that row another way.
     *
     * @return {@code to}, or the first row not done
     */
    int smallRows(SmallRows s, int from, int to) {
        float[] t = new float[s.c];
        int a = s.affine(from);
        for (int r = from; r < to; r++) {
            if (!smallRow(s, r, a, t)) {
                return r;
            }
            a += s.c;
            if (a >= s.period) {
                a -= s.period;
            }
        }
        return to;
    }

    /**
     * One row of {@link #smallRows} in plain operations, affine entries from {@code a}, {@code t} a
     * scratch array of c floats.
     *
     * @return false, with nothing written, where a statistic is not finite
     */
    static boolean smallRow(SmallRows s, int r, int a, float[] t) {
        int c = s.c;
        int off = r * c;
        float[] x = s.x;
        float k = 0f;
        float m = 0f;
        if (!s.rms) {
            k = x[off];
            for (int i = 0; i < c; i++) {
                t[i] = x[off + i] - k;
            }
            m = halvingSum(t, c) * s.invC;
        }
        for (int i = 0; i < c; i++) {
            float e = s.rms ? x[off + i] : (x[off + i] - k) - m;
            t[i] = e * e;
        }
        float q = halvingSum(t, c);
        float mu = k + m;
        if (!Float.isFinite(q) || !Float.isFinite(mu)) {
            return false;
        }
        float inv = s.invStd(q * s.invC);
        for (int i = 0; i < c; i++) {
            float e = s.rms ? x[off + i] : (x[off + i] - k) - m;
            s.y[off + i] = fma(e * inv, s.w[a + i], s.b[a + i]);
        }
        if (s.mean != null) {
            s.mean[r] = mu;
        }
        if (s.inv != null) {
            s.inv[r] = inv;
        }
        return true;
    }

    /** T over {@code t[0, n)}, n a power of two: {@code t[i] += t[i + h]} for h = n/2, n/4, ..., 1 (overwrites t). */
    static float halvingSum(float[] t, int n) {
        for (int h = n >> 1; h > 0; h >>= 1) {
            for (int i = 0; i < h; i++) {
                t[i] += t[i + h];
            }
        }
        return t[0];
    }

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
     * {@link #columnSumAndSquares}, the same bits, walking the block a few rows at a time across the
     * width: X is then read as a few sequential streams, where walking down a strip of columns takes
     * one line of each row in turn (a page a load at rows of 1024 values). For long rows
     * ({@code ChannelNorm.ROW_MAJOR_WIDTH}); the default is {@link #columnSumAndSquares}.
     */
    void columnSumAndSquaresByRows(float[] x, int off, int stride, int rows, int width, float[] k, int koff,
            float[] sum, float[] squares) {
        columnSumAndSquares(x, off, stride, rows, width, k, koff, sum, squares);
    }

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
}
