package org.normcl.jvm;

import java.util.Arrays;

import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The Java backend's row normalization (layer, RMS, group, instance and trailing-axis MVN).
 *
 * <p><b>One read of X from memory.</b> The statistics of a row are taken run by run
 * ({@link RowKernels#RUN} values) in one pass each: the sums of {@code x - k} and of its squares,
 * from a shift {@code k} near the run's mean ({@link Moments#runShift}), turned into the run's
 * squared deviations in double, with a two-pass redo from L1 when the run's mean is far from its
 * shift ({@link Moments#mergeRunOnePass}). The normalization reads the row again from L1/L2 (a row
 * of up to ~64K floats fits in L2). Layer and RMS norm rows of several runs are taken a row at a
 * time, statistics then normalization ({@link Call#longRows}); other rows of several runs go as a
 * software pipeline ({@link Call#rows}): where the normalized run lies inside one segment of a
 * group or instance norm (one scale and bias), the statistics of one run and the normalization of a
 * run of an earlier row go through one fused kernel. Rows of one run, and of at most
 * {@link #SHORT_ROW} values, go through pipelines over rows ({@link Call#rows},
 * {@link Call#shortRows}).
 *
 * <p><b>Accuracy.</b> Runs are reduced in float32 from their own shift and merged in double
 * precision (Chan's formula), so a large common offset costs no accuracy; the row is normalized as
 * {@code ((x - shift) - rest) * invStd * w + b}, where {@code shift} is the row's mean rounded to
 * float32 and {@code rest} what the rounding left. A run whose float32 result is not finite is
 * redone in double, so infinities and NaN behave as before.
 *
 * <p><b>Determinism.</b> The reduction order is fixed by the row length alone: runs are merged, in
 * order, into chunks of {@link #CHUNK} values, and chunks into the row, in order. Rows are spread
 * over the threads; when there are too few rows to share, the chunks of a row are reduced in
 * parallel and merged in the same order. So results are bitwise the same with any number of
 * threads and any scheduling.
 */
final class RowNorm {
    /** Values per chunk: the unit of the fixed merge order and of splitting a row over threads. */
    static final int CHUNK = 32 * RowKernels.RUN;
    private static final int RUNS_PER_CHUNK = CHUNK / RowKernels.RUN;
    /** Rows up to this long take {@link Call#shortRows}. */
    static final int SHORT_ROW = 256;
    /**
     * Rows shorter than this take {@link Call#tinyRows}: group norm of (N, C) data with a few channels
     * per group (65536x128 in 32 groups, rows of 4 values, took 56 ms through {@link Call#shortRows}).
     */
    static final int TINY_ROW = 16;

    /** Rows between the two passes of {@link Call#shortRows}. */
    static final int SHORT_LAG = 8;

    /** Shared identity arrays, grown to the largest affine size seen (read-only once published). */
    private static volatile float[] ones = new float[0];
    private static volatile float[] negativeZeros = new float[0];

    private final RowKernels kernels;
    private final Parallel parallel;

    RowNorm(RowKernels kernels, Parallel parallel) {
        this.kernels = kernels;
        this.parallel = parallel;
    }

    /** @return an array of at least {@code n} ones (shared, read-only): the identity scale */
    static float[] ones(int n) {
        float[] a = ones;
        if (a.length < n) {
            a = new float[n];
            Arrays.fill(a, 1f);
            ones = a;
        }
        return a;
    }

    /** @return an array of at least {@code n} values -0.0f (shared, read-only): the identity bias */
    static float[] negativeZeros(int n) {
        float[] a = negativeZeros;
        if (a.length < n) {
            a = new float[n];
            Arrays.fill(a, -0.0f);
            negativeZeros = a;
        }
        return a;
    }

    /**
     * See {@link org.normcl.backend.Backend#rowNorm}; {@code meanOut} and {@code invOut} may be null,
     * {@code scale} and {@code bias} are ignored unless the plan has them.
     */
    void run(RowNormPlan p, float[] x, float[] scale, float[] bias, float[] y, float[] meanOut, float[] invOut) {
        Call call = new Call(p, x, p.hasScale() ? scale : null, p.hasBias() ? bias : null, y, meanOut, invOut);
        int cols = call.cols;
        int chunks = (cols + CHUNK - 1) / CHUNK;
        if (parallel.threads() > 1 && chunks > 1 && p.rows() < 4L * parallel.threads()) {
            call.split((int) p.rows(), chunks);
        } else {
            parallel.forRange(p.rows(), cols, (from, to) -> call.rows((int) from, (int) to));
        }
    }

    /** The shift of a slice whose first element is x0: x0 itself unless it is NaN or infinite. */
    static float shiftOf(float x0) {
        return Float.isFinite(x0) ? x0 : 0f;
    }

    /** One rowNorm call: the plan, the arrays, and the work on them. */
    private final class Call {
        final RowNormPlan p;
        final float[] x;
        final float[] y;
        /** Per column (spatial 1): never null, ones when absent. Per segment: null when absent. */
        final float[] w;
        /** Null when absent (the kernels then skip the addition, an exact no-op). */
        final float[] b;
        /** Per column: {@code b}, or -0.0f values (the identity) when absent, for the fused kernel. */
        final float[] bOrIdentity;
        /**
         * Neither scale nor bias (layer or RMS norm): the normalizations take one scale (1) and bias
         * (-0.0f), whose {@code fma(v, 1, -0.0f)} is {@code v}, instead of the identity arrays
         * {@link #w} and {@link #bOrIdentity} (on long rows the two parameter streams cost 10-20% of
         * the time; see docs/performance.md). RMS norm's fused step keeps its own kernel, which
         * reads {@link #w}: {@code v * 1} is {@code v} there too.
         */
        final boolean identityAffine;
        final float[] meanOut;
        final float[] invOut;
        final int cols;
        final int spatial;
        final boolean rms;
        /** Rows of 2, 4, ..., 64 values with one affine entry each: {@link #smallRows}; else null. */
        final RowKernels.SmallRows small;

        Call(RowNormPlan p, float[] x, float[] scale, float[] bias, float[] y, float[] meanOut, float[] invOut) {
            this.p = p;
            this.x = x;
            this.y = y;
            this.cols = Math.toIntExact(p.cols());
            this.spatial = (int) p.spatial();
            int affine = (int) p.affineSize();
            this.w = scale != null || spatial > 1 ? scale : ones(affine);
            this.b = bias;
            this.bOrIdentity = bias != null || spatial > 1 ? bias : negativeZeros(affine);
            this.identityAffine = scale == null && bias == null && spatial == 1;
            this.meanOut = p.mode() == StatMode.RMS ? null : meanOut;
            this.invOut = invOut;
            this.rms = p.mode() == StatMode.RMS;
            this.small = spatial == 1 && cols >= 2 && cols <= RowKernels.SMALL_ROW_MAX && Integer.bitCount(cols) == 1
                    ? new RowKernels.SmallRows(x, y, scale, bias, affine, cols, p.mode(), p.epsilon(), meanOut, invOut)
                    : null;
        }

        int affineBase(long row) {
            long groups = p.groups();
            return groups == 1 ? 0 : (int) ((row % groups) * p.channelsPerGroup());
        }

        /**
         * Rows {@code [from, to)} on one thread. Rows of more than one run with one affine entry per
         * column (layer and RMS norm) take {@link #longRows}; the others go as a software pipeline
         * over their runs (u = 0, 1, ... in row order). Step t takes the statistics of run t (read
         * from memory, in one pass: {@link Moments#mergeRunOnePass}) and normalizes run t - D, whose
         * row's statistics were completed at least one step before (D = runs per row). When the two
         * runs have the same length, and the normalized one has per-column parameters or lies inside
         * one segment, they go through one fused kernel, so X streams in from memory while the other
         * run is normalized from cache. The results are those of the unfused passes, bit for bit,
         * merged in the same order as {@link #split}.
         */
        void rows(int from, int to) {
            if (from >= to) {
                return;
            }
            RowKernels kern = kernels.fresh();
            if (cols == 1 && !rms) {
                singleValueRows(kern, from, to);
                return;
            }
            if (small != null) {
                smallRows(kern, from, to);
                return;
            }
            if (cols < TINY_ROW) {
                tinyRows(kern, from, to);
                return;
            }
            if (cols <= SHORT_ROW) {
                shortRows(kern, from, to);
                return;
            }
            final int run = RowKernels.RUN;
            int runs = (cols + run - 1) / run;
            int lastRun = cols - (runs - 1) * run;
            if (runs > 1 && spatial == 1) {
                longRows(kern, from, to, runs, lastRun);
                return;
            }
            int total = (to - from) * runs;
            int lag = runs;
            boolean fuseApply = spatial == 1;
            RowStats stats = new RowStats(2);
            Moments row = new Moments();
            Moments chunk = new Moments();
            double rowSs = 0;
            double chunkSs = 0;
            // Cursors (row index relative to `from`, run within the row) of the two passes; each moves
            // one run per step once its pass has started.
            int rs = 0;
            int js = 0;
            int ra = 0;
            int ja = 0;
            for (int t = 0; t < total + lag; t++) {
                boolean hasS = t < total;
                boolean hasA = t >= lag;
                int sOff = (from + rs) * cols + js * run;
                int ns = js == runs - 1 ? lastRun : run;
                float ks = hasS && !rms ? Moments.runShift(x, sOff, ns) : 0f;
                // This step normalizes columns [c0, c1): run ja.
                int c0 = ja * run;
                int c1 = Math.min(cols, c0 + run);
                int na = c1 - c0;
                int aOff = (from + ra) * cols + c0;
                float sum = 0f;
                if (hasA && hasS && fuseApply && ns == na) {
                    sum = normalizeAndReduce(kern, stats, ra, aOff, affineBase(from + ra) + c0, na, sOff, ks);
                } else if (hasA && hasS && !rms && ns == na && c0 / spatial == (c1 - 1) / spatial) {
                    // Group and instance norm: a run inside one segment has one scale and bias.
                    int seg = affineBase(from + ra) + c0 / spatial;
                    sum = kern.normalizeUniformSumAndSquaresNext(x, y, aOff, na, stats.shift(ra), stats.mean(ra),
                            stats.inv(ra), segmentScale(seg), segmentBias(seg), sOff, ks);
                } else {
                    if (hasA && na > 0) {
                        stats.apply(kern, from + ra, ra, c0, c1);
                    }
                    if (hasS) {
                        sum = rms ? kern.sumSquares(x, sOff, ns) : kern.sumAndSquaresShifted(x, sOff, ns, ks);
                    }
                }
                if (hasS) {
                    boolean chunkEnd = js == runs - 1 || (js + 1) % RUNS_PER_CHUNK == 0;
                    if (rms) {
                        chunkSs += Moments.runSumOfSquares(sum, x, sOff, ns);
                        if (chunkEnd) {
                            rowSs += chunkSs;
                            chunkSs = 0;
                        }
                    } else {
                        chunk.mergeRunOnePass(kern, x, sOff, ns, ks, sum, kern.squares);
                        if (chunkEnd) {
                            row.merge(chunk.count, chunk.mean, chunk.m2);
                            chunk.reset();
                        }
                    }
                    if (js == runs - 1) {
                        stats.finish(from + rs, rs, row, rowSs);
                        row.reset();
                        rowSs = 0;
                    }
                }
                if (hasS && ++js == runs) {
                    js = 0;
                    rs++;
                }
                if (hasA && ++ja == runs) {
                    ja = 0;
                    ra++;
                }
            }
        }

        /**
         * Rows of more than one run with one affine entry per column (layer and RMS norm), a row at
         * a time: its statistics run by run (merged into chunks and the row in the order of
         * {@link #rows} and {@link #split}), then its normalization, X read back from L1/L2. On a
         * Zen 5 host this beat the run pipeline of {@link #rows} that it replaced for these rows
         * (alternating JVMs, 2026-11-29: layer norm 512x65536 7.8-8.4 -> 7.1-7.6 ms, 1024x8192
         * 2.2-2.5 -> 1.8-1.9; RMS norm 512x65536 7.5-7.9 -> 5.6-7.4). A likely reason: a core here
         * is bound by the misses it keeps in flight, and the fused steps interleaved three cached
         * streams with the one from memory (docs/performance.md, "2026-11-29, 09:40-10:00 UTC").
         */
        private void longRows(RowKernels kern, int from, int to, int runs, int lastRun) {
            final int run = RowKernels.RUN;
            RowStats stats = new RowStats(2);
            Moments row = new Moments();
            Moments chunk = new Moments();
            for (int r = from; r < to; r++) {
                row.reset();
                double rowSs = 0;
                double chunkSs = 0;
                for (int j = 0; j < runs; j++) {
                    int off = r * cols + j * run;
                    int n = j == runs - 1 ? lastRun : run;
                    boolean chunkEnd = j == runs - 1 || (j + 1) % RUNS_PER_CHUNK == 0;
                    if (rms) {
                        chunkSs += Moments.runSumOfSquares(kern.sumSquares(x, off, n), x, off, n);
                        if (chunkEnd) {
                            rowSs += chunkSs;
                            chunkSs = 0;
                        }
                    } else {
                        float k = Moments.runShift(x, off, n);
                        chunk.mergeRunOnePass(kern, x, off, n, k, kern.sumAndSquaresShifted(x, off, n, k),
                                kern.squares);
                        if (chunkEnd) {
                            row.merge(chunk.count, chunk.mean, chunk.m2);
                            chunk.reset();
                        }
                    }
                }
                stats.finish(r, r - from, row, rowSs);
                stats.apply(kern, r, r - from, 0, cols);
            }
        }

        /**
         * Rows of at most {@link #SHORT_ROW} values (one run each) as a software pipeline over rows:
         * step t takes the statistics of row t and normalizes row t - {@link #SHORT_LAG} in one fused
         * kernel. A short row's statistics are a chain of dependent operations (the reduction, a
         * horizontal sum, the merge, a square root, a division) about as long as the row's own
         * arithmetic; with the lag no operation of a step waits for another, so the processor
         * overlaps the chains of consecutive rows, and the rows between the passes stay in L1. The
         * same passes and merges as {@link #rows}, so the same bits.
         */
        void shortRows(RowKernels kern, int from, int to) {
            final int lag = SHORT_LAG;
            int count = to - from;
            RowStats stats = new RowStats(lag + 1);
            Moments row = new Moments();
            boolean fuse = spatial == 1;
            for (int t = 0; t < count + lag; t++) {
                int rs = t;
                int ra = t - lag;
                boolean hasS = rs < count;
                boolean hasA = ra >= 0;
                int sOff = (from + rs) * cols;
                float ks = hasS && !rms ? Moments.runShift(x, sOff, cols) : 0f;
                float sum = 0f;
                if (hasA && hasS && fuse) {
                    sum = normalizeAndReduce(kern, stats, ra, (from + ra) * cols, affineBase(from + ra), cols, sOff,
                            ks);
                } else {
                    if (hasA) {
                        stats.apply(kern, from + ra, ra, 0, cols);
                    }
                    if (hasS) {
                        sum = rms ? kern.sumSquares(x, sOff, cols) : kern.sumAndSquaresShifted(x, sOff, cols, ks);
                    }
                }
                if (hasS) {
                    double sumOfSquares = 0;
                    if (rms) {
                        sumOfSquares = Moments.runSumOfSquares(sum, x, sOff, cols);
                    } else {
                        row.reset();
                        row.mergeRunOnePass(kern, x, sOff, cols, ks, sum, kern.squares);
                    }
                    stats.finish(from + rs, rs, row, sumOfSquares);
                }
            }
        }

        /**
         * Rows of 2, 4, ..., {@link RowKernels#SMALL_ROW_MAX} values with one affine entry per value
         * (layer and RMS norm of short rows, group norm of (N, C) data): {@link RowKernels#smallRows},
         * blocks of rows a vector at a time with their statistics in float32 from the row's first value,
         * in an order independent of the vector width. A row it stops at (an infinity or NaN, or a sum
         * of squares past float32's range) goes through {@link #shortRows}, which takes its statistics
         * in double and propagates non-finite values.
         */
        void smallRows(RowKernels kern, int from, int to) {
            int r = from;
            while (r < to) {
                r = kern.smallRows(small, r, to);
                if (r < to) {
                    shortRows(kern, r, r + 1);
                    r++;
                }
            }
        }

        /**
         * Rows of fewer than {@link #TINY_ROW} values, one at a time in plain loops: the statistics in
         * double precision, in two passes (the mean, then the squared deviations from it; RMS norm the
         * mean square), without {@link #shortRows}' per-row machinery (about 15-25 ns a row: kernel
         * calls on a handful of values, shifts, merges). The saved statistics and the normalization
         * are those of {@link RowStats#finish} and {@link #apply} on these moments; a row with a value
         * that is not finite goes through {@link #shortRows}, which propagates it.
         */
        void tinyRows(RowKernels kern, int from, int to) {
            double perValue = 1.0 / cols;
            int entries = (int) p.affineSize();
            // affineBase(r), without a division per row (spatial 1: each row takes the next cols entries).
            int a = affineBase(from) - cols;
            for (int r = from; r < to; r++) {
                int off = r * cols;
                a = a + cols >= entries ? 0 : a + cols;
                double sum = 0; // RMS norm: the sum of squares
                for (int i = 0; i < cols; i++) {
                    double v = x[off + i];
                    sum = rms ? sum + v * v : sum + v;
                }
                // Fewer than 16 float values cannot overflow a double: not finite means an infinity or NaN.
                if (!Double.isFinite(sum)) {
                    shortRows(kern, r, r + 1);
                    continue;
                }
                float shift = 0f;
                float rest = 0f;
                float inv;
                if (rms) {
                    inv = RowKernels.invStd(p.mode(), sum * perValue, p.epsilon());
                } else {
                    double mu = sum * perValue;
                    double m2 = 0;
                    for (int i = 0; i < cols; i++) {
                        double d = x[off + i] - mu;
                        m2 += d * d;
                    }
                    shift = (float) mu;
                    rest = (float) (mu - shift);
                    inv = RowKernels.invStd(p.mode(), m2 * perValue, p.epsilon());
                    if (meanOut != null) {
                        meanOut[r] = shift;
                    }
                }
                if (invOut != null) {
                    invOut[r] = inv;
                }
                if (spatial == 1 && !identityAffine) {
                    // apply()'s normalizeAffine, without a kernel call per handful of values.
                    for (int i = 0; i < cols; i++) {
                        float v = ((x[off + i] - shift) - rest) * inv;
                        y[off + i] = b == null ? v * w[a + i] : RowKernels.fma(v, w[a + i], b[a + i]);
                    }
                } else {
                    apply(kern, r, 0, cols, shift, rest, inv);
                }
            }
        }

        /**
         * Rows of one value (instance norm of (N, C) data, layer norm over a last dimension of 1)
         * without {@link #shortRows}' per-row machinery, which cost about 15 ns a row (8M rows: 130
         * ms): a value's statistics are the value itself (its shift {@code 0f + x}, as
         * {@link Moments#runShift} takes it, a remainder of 0 and a variance of 0, so one inverse
         * deviation for every row), and y is {@link #apply}'s formula on them. The same operations
         * as there, so the same bits; a row whose value is not finite goes through {@link #shortRows}.
         */
        void singleValueRows(RowKernels kern, int from, int to) {
            float inv = RowKernels.invStd(p.mode(), 0.0, p.epsilon());
            int groups = (int) p.groups();
            int r = from;
            while (r < to) {
                // A run of finite values within one sample (affine entries a, a + 1, ...), a vector at a time.
                int a = affineBase(r);
                int end = Math.min(to, r + (groups - a));
                int s = r;
                while (s < end && Float.isFinite(x[s])) {
                    s++;
                }
                if (s > r) {
                    kern.singleValues(x, y, r, s - r, inv, identityAffine ? null : w, bOrIdentity, a, meanOut, invOut);
                }
                if (s < end) {
                    shortRows(kern, s, s + 1);
                    s++;
                }
                r = s;
            }
        }

        /**
         * The fused step: normalizes {@code n} values at {@code aOff} (row {@code i} of
         * {@code stats}, affine index {@code aff}) and reduces the statistics of the run at
         * {@code sOff} (shifted by {@code ks}; RMS: its sum of squares).
         */
        float normalizeAndReduce(RowKernels kern, RowStats stats, int i, int aOff, int aff, int n, int sOff,
                float ks) {
            if (rms) {
                return kern.normalizeAffineSumSquaresNext(x, y, aOff, n, 0f, 0f, stats.inv(i), w, b, aff, sOff);
            }
            if (identityAffine) {
                return kern.normalizeUniformSumAndSquaresNext(x, y, aOff, n, stats.shift(i), stats.mean(i),
                        stats.inv(i), 1f, -0.0f, sOff, ks);
            }
            return kern.normalizeAffineSumAndSquaresNext(x, y, aOff, n, stats.shift(i), stats.mean(i), stats.inv(i),
                    w, bOrIdentity, aff, sOff, ks);
        }

        /**
         * The normalization constants of a range of rows: row i is applied as
         * {@code ((x - shifts[i]) - means[i]) * invs[i]}. The shift is the row's mean rounded to
         * float32 and {@code means[i]} what that rounding left, so {@code x - shift} is exact for
         * values near the mean (Sterbenz) and a large common offset costs no accuracy.
         */
        final class RowStats {
            private final float[] shifts;
            private final float[] means;
            private final float[] invs;
            /** Slots - 1: row i's constants are in slot {@code i & mask}. */
            private final int mask;

            /**
             * @param window the most rows whose constants are needed at once (completed and not yet
             *     applied): the pipelines keep a few slots, reused, rather than an entry per row, so
             *     that a call on many short rows allocates nothing of their number (65536 rows took
             *     768 KiB a call, on heap pages the JVM may not have touched yet)
             */
            RowStats(int window) {
                int slots = Integer.highestOneBit(Math.max(1, window - 1)) << 1;
                shifts = new float[slots];
                means = new float[slots];
                invs = new float[slots];
                mask = slots - 1;
            }

            float shift(int i) {
                return shifts[i & mask];
            }

            float mean(int i) {
                return means[i & mask];
            }

            float inv(int i) {
                return invs[i & mask];
            }

            /**
             * Completes row {@code r} (index {@code i} here) from its moments ({@code row}, absolute
             * mean) or, for RMS norm, its sum of squares, and writes its saved statistics.
             */
            void finish(int r, int i, Moments row, double sumOfSquares) {
                int slot = i & mask;
                if (rms) {
                    invs[slot] = RowKernels.invStd(p.mode(), sumOfSquares / cols, p.epsilon());
                } else {
                    double mu = row.mean;
                    float k = (float) mu;
                    shifts[slot] = Float.isFinite(k) ? k : 0f;
                    means[slot] = (float) (mu - shifts[slot]);
                    invs[slot] = RowKernels.invStd(p.mode(), row.variance(), p.epsilon());
                    if (meanOut != null) {
                        meanOut[r] = (float) mu;
                    }
                }
                if (invOut != null) {
                    invOut[r] = invs[slot];
                }
            }

            /** Normalizes columns {@code [c0, c1)} of row {@code r} (index {@code i} here). */
            void apply(RowKernels kern, int r, int i, int c0, int c1) {
                Call.this.apply(kern, r, c0, c1, shift(i), mean(i), inv(i));
            }
        }

        /** Few long rows: chunks reduced in parallel, merged per row in order, then applied in parallel. */
        void split(int rows, int chunks) {
            int tasks = rows * chunks;
            double[] cn = new double[tasks];
            double[] cmean = new double[tasks];
            double[] cm2 = new double[tasks];
            parallel.forRange(tasks, CHUNK, (from, to) -> {
                RowKernels kern = kernels.fresh();
                Moments chunk = new Moments();
                for (int t = (int) from; t < to; t++) {
                    int r = t / chunks;
                    int c0 = (t % chunks) * CHUNK;
                    int off = r * cols;
                    int len = Math.min(CHUNK, cols - c0);
                    if (rms) {
                        cm2[t] = Moments.sumOfSquares(kern, x, off + c0, len);
                    } else {
                        chunk.reset();
                        chunk.addOnePass(kern, x, off + c0, len);
                        cn[t] = chunk.count;
                        cmean[t] = chunk.mean;
                        cm2[t] = chunk.m2;
                    }
                }
            });
            RowStats stats = new RowStats(rows);
            Moments row = new Moments();
            for (int r = 0; r < rows; r++) {
                double ss = 0;
                row.reset();
                for (int c = 0; c < chunks; c++) {
                    int t = r * chunks + c;
                    if (rms) {
                        ss += cm2[t];
                    } else {
                        row.merge(cn[t], cmean[t], cm2[t]);
                    }
                }
                stats.finish(r, r, row, ss);
            }
            parallel.forRange(tasks, CHUNK, (from, to) -> {
                RowKernels kern = kernels.fresh();
                for (int t = (int) from; t < to; t++) {
                    int r = t / chunks;
                    int c0 = (t % chunks) * CHUNK;
                    stats.apply(kern, r, r, c0, Math.min(cols, c0 + CHUNK));
                }
            });
        }

        /**
         * {@code y = (((x - shift) - mean) * inv) * w + b} over columns {@code [c0, c1)} of row r, with
         * {@code w} and {@code b} per the plan's affine index.
         */
        void apply(RowKernels kern, long r, int c0, int c1, float shift, float mean, float inv) {
            int off = (int) (r * cols);
            int affineBase = affineBase(r);
            if (identityAffine) {
                kern.normalizeUniform(x, y, off + c0, c1 - c0, shift, mean, inv, 1f, -0.0f);
                return;
            }
            if (spatial == 1) {
                kern.normalizeAffine(x, y, off + c0, c1 - c0, shift, mean, inv, w, b, affineBase + c0);
                return;
            }
            // One affine entry per segment of `spatial` values (group and instance norm).
            int c = c0;
            while (c < c1) {
                int seg = c / spatial;
                int end = Math.min(c1, (seg + 1) * spatial);
                kern.normalizeUniform(x, y, off + c, end - c, shift, mean, inv, segmentScale(affineBase + seg),
                        segmentBias(affineBase + seg));
                c = end;
            }
        }

        /** The scale of affine entry {@code e} of a plan with one entry per segment: 1 when absent. */
        float segmentScale(int e) {
            return w != null ? w[e] : 1f;
        }

        /** The bias of affine entry {@code e} of a plan with one entry per segment: 0 when absent. */
        float segmentBias(int e) {
            return b != null ? b[e] : 0f;
        }
    }
}
