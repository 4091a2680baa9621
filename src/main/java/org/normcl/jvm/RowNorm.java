package org.normcl.jvm;

import java.util.Arrays;

import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The Java backend's row normalization (layer, RMS, group, instance and trailing-axis MVN).
 *
 * <p><b>One read of X from memory.</b> The statistics of a row are taken run by run
 * ({@link RowKernels#RUN} values: the sum, then the squared deviations from the run mean while the
 * run is in L1), and the normalization reads the row again from L1/L2 (a row of up to ~64K floats
 * fits in L2). Rows are processed as a software pipeline ({@link Call#rows}): with one affine entry
 * per column (layer and RMS norm) the three passes over three different runs go through one fused
 * kernel, so the next run streams in from memory while the arithmetic of the others runs from
 * cache. Rows of at most {@link #SHORT_ROW} values are simply processed one after the other
 * ({@link Call#shortRows}): the hardware prefetcher streams them in, and the pipeline's bookkeeping
 * would cost more than such a row; RMS norm's go through a pipeline over rows instead
 * ({@link Call#shortRowsRms}), with the same results.
 *
 * <p><b>Accuracy.</b> Values are shifted by the row's first element (when finite) before they are
 * accumulated, so a large common offset costs no accuracy; the mean is {@code shift + shiftedMean}
 * and the normalization is {@code ((x - shift) - shiftedMean) * invStd * w + b}, as in the OpenCL
 * kernels. Runs are reduced in float32 and merged in double precision (Chan's formula); a run whose
 * float32 result is not finite is redone in double, so infinities and NaN behave as before.
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
    /** Rows between the two passes of {@link Call#shortRowsRms}. */
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
        final float[] meanOut;
        final float[] invOut;
        final int cols;
        final int spatial;
        final boolean rms;

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
            this.meanOut = p.mode() == StatMode.RMS ? null : meanOut;
            this.invOut = invOut;
            this.rms = p.mode() == StatMode.RMS;
        }

        int affineBase(long row) {
            long groups = p.groups();
            return groups == 1 ? 0 : (int) ((row % groups) * p.channelsPerGroup());
        }

        /**
         * Rows {@code [from, to)} on one thread, as a software pipeline over their runs (u = 0, 1, ...
         * in row order). Step t takes three passes, each over one run: the sum of run t (read from
         * memory), the squared deviations of run t - 1 (from L1, its mean now known), and the
         * normalization of run t - D, whose row's statistics were completed at least one step before
         * (D = runs per row + 1; RMS has no second pass, D = runs per row). When the three runs have
         * the same length they go through one fused kernel, so X streams in from memory while the
         * arithmetic of the other passes runs from cache. The results are those of the unfused
         * passes, bit for bit, merged in the same order as {@link #split}.
         */
        void rows(int from, int to) {
            if (from >= to) {
                return;
            }
            RowKernels kern = kernels.fresh();
            if (cols <= SHORT_ROW) {
                if (rms) {
                    shortRowsRms(kern, from, to);
                } else {
                    shortRows(kern, from, to);
                }
                return;
            }
            final int run = RowKernels.RUN;
            int runs = (cols + run - 1) / run;
            int lastRun = cols - (runs - 1) * run;
            int total = (to - from) * runs;
            int lag = rms ? runs : runs + 1;
            boolean fuseApply = spatial == 1;
            int count = to - from;
            float[] shifts = new float[count];
            float[] means = new float[count];
            float[] invs = new float[count];
            Moments row = new Moments();
            Moments chunk = new Moments();
            double rowSs = 0;
            double chunkSs = 0;
            float previousSum = 0f;
            // Cursors (row index relative to `from`, run within the row) of the three passes; each
            // moves one run per step once its pass has started.
            int rs = 0;
            int js = 0;
            int rq = 0;
            int jq = 0;
            int ra = 0;
            int ja = 0;
            for (int t = 0; t < total + lag; t++) {
                boolean hasS = t < total;
                boolean hasQ = !rms && t >= 1 && t <= total;
                boolean hasA = t >= lag;
                int sOff = (from + rs) * cols + js * run;
                int ns = js == runs - 1 ? lastRun : run;
                if (hasS && js == 0) {
                    shifts[rs] = rms ? 0f : shiftOf(x[sOff]);
                }
                float ks = hasS ? shifts[rs] : 0f;
                int qOff = (from + rq) * cols + jq * run;
                int nq = jq == runs - 1 ? lastRun : run;
                float kq = hasQ ? shifts[rq] : 0f;
                float runMean = hasQ ? previousSum / nq : 0f;
                int aOff = (from + ra) * cols + ja * run;
                int na = ja == runs - 1 ? lastRun : run;
                float sum = 0f;
                float q = 0f;
                if (hasA && fuseApply && hasS && (rms || hasQ) && ns == na) {
                    int aff = affineBase(from + ra) + ja * run;
                    if (rms) {
                        sum = kern.normalizeAffineSumSquaresNext(x, y, aOff, na, 0f, 0f, invs[ra], w, b, aff, sOff);
                    } else {
                        sum = kern.normalizeAffineSquaredDeviationsSum(x, y, aOff, na, shifts[ra], means[ra], invs[ra],
                                w, bOrIdentity, aff, qOff, kq, runMean, sOff, ks);
                        q = kern.squaredDeviations;
                    }
                } else {
                    if (hasA) {
                        apply(kern, from + ra, ja * run, ja * run + na, shifts[ra], means[ra], invs[ra]);
                    }
                    if (hasQ && hasS && ns == nq) {
                        sum = kern.squaredDeviationsSum(x, ns, qOff, kq, runMean, sOff, ks);
                        q = kern.squaredDeviations;
                    } else {
                        if (hasQ) {
                            q = kern.sumSquaredDeviations(x, qOff, nq, kq, runMean);
                        }
                        if (hasS) {
                            sum = rms ? kern.sumSquares(x, sOff, ns) : kern.sumShifted(x, sOff, ns, ks);
                        }
                    }
                }
                if (rms && hasS) {
                    chunkSs += Moments.runSumOfSquares(sum, x, sOff, ns);
                    if (js == runs - 1 || (js + 1) % RUNS_PER_CHUNK == 0) {
                        rowSs += chunkSs;
                        chunkSs = 0;
                    }
                    if (js == runs - 1) {
                        invs[rs] = RowKernels.invStd(p.mode(), rowSs / cols, p.epsilon());
                        publish(from + rs, 0f, null, invs[rs]);
                        rowSs = 0;
                    }
                }
                if (hasQ) {
                    if (runs == 1) {
                        // One run per row: its moments are the row's (the merges below would only copy).
                        double mu;
                        double variance;
                        if (Float.isFinite(runMean) && Float.isFinite(q)) {
                            mu = runMean;
                            variance = (double) q / nq;
                        } else {
                            row.reset();
                            row.addRunExact(x, qOff, nq, kq);
                            mu = row.mean;
                            variance = row.variance();
                        }
                        means[rq] = (float) mu;
                        invs[rq] = RowKernels.invStd(p.mode(), variance, p.epsilon());
                        if (meanOut != null) {
                            meanOut[from + rq] = (float) (kq + mu);
                        }
                        if (invOut != null) {
                            invOut[from + rq] = invs[rq];
                        }
                    } else {
                        // Merge run t - 1 into its chunk, the chunk into its row, the row's statistics out.
                        chunk.mergeRun(x, qOff, nq, kq, runMean, q);
                        if (jq == runs - 1 || (jq + 1) % RUNS_PER_CHUNK == 0) {
                            row.merge(chunk.count, chunk.mean, chunk.m2);
                            chunk.reset();
                        }
                        if (jq == runs - 1) {
                            means[rq] = (float) row.mean;
                            invs[rq] = RowKernels.invStd(p.mode(), row.variance(), p.epsilon());
                            publish(from + rq, kq, row, invs[rq]);
                            row.reset();
                        }
                    }
                }
                previousSum = sum;
                if (hasS && ++js == runs) {
                    js = 0;
                    rs++;
                }
                if (hasQ && ++jq == runs) {
                    jq = 0;
                    rq++;
                }
                if (hasA && ++ja == runs) {
                    ja = 0;
                    ra++;
                }
            }
        }

        /**
         * Rows of at most {@link #SHORT_ROW} values, one after the other: a row is a single run, the
         * hardware prefetcher streams the next rows in while this one is computed, and the pipeline's
         * bookkeeping would cost more than the row. The same passes as {@link #rows}, so the same bits.
         */
        void shortRows(RowKernels kern, int from, int to) {
            Moments exact = new Moments();
            for (int r = from; r < to; r++) {
                int off = r * cols;
                float k = 0f;
                float m = 0f;
                float inv;
                if (rms) {
                    double ss = Moments.runSumOfSquares(kern.sumSquares(x, off, cols), x, off, cols);
                    inv = RowKernels.invStd(p.mode(), ss / cols, p.epsilon());
                } else {
                    k = shiftOf(x[off]);
                    float runMean = kern.sumShifted(x, off, cols, k) / cols;
                    float q = kern.sumSquaredDeviations(x, off, cols, k, runMean);
                    double mu;
                    double variance;
                    if (Float.isFinite(runMean) && Float.isFinite(q)) {
                        mu = runMean;
                        variance = (double) q / cols;
                    } else {
                        exact.reset();
                        exact.addRunExact(x, off, cols, k);
                        mu = exact.mean;
                        variance = exact.variance();
                    }
                    m = (float) mu;
                    inv = RowKernels.invStd(p.mode(), variance, p.epsilon());
                    if (meanOut != null) {
                        meanOut[r] = (float) (k + mu);
                    }
                }
                if (invOut != null) {
                    invOut[r] = inv;
                }
                apply(kern, r, 0, cols, k, m, inv);
            }
        }

        /**
         * RMS norm's rows of at most {@link #SHORT_ROW} values (one run each) as a software pipeline
         * over rows: step t takes the sum of squares of row t and normalizes row t - {@link #SHORT_LAG}
         * in one fused kernel. A short row's statistic is a chain of dependent operations (the
         * reduction, a horizontal sum, a square root, a division) about as long as the row's own
         * arithmetic; with the lag no operation of a step waits for another, so the processor
         * overlaps the chains of consecutive rows, and the rows between the passes stay in L1. The
         * same passes as {@link #shortRows}, so the same bits. (Layer norm's three passes gained
         * nothing measurable this way, so its short rows stay in {@link #shortRows}.)
         */
        void shortRowsRms(RowKernels kern, int from, int to) {
            final int lag = SHORT_LAG;
            int count = to - from;
            float[] invs = new float[count];
            boolean fuse = spatial == 1;
            for (int t = 0; t < count + lag; t++) {
                int rs = t;
                int ra = t - lag;
                boolean hasS = rs < count;
                boolean hasA = ra >= 0;
                int sOff = (from + rs) * cols;
                float ss = 0f;
                if (hasA && hasS && fuse) {
                    ss = kern.normalizeAffineSumSquaresNext(x, y, (from + ra) * cols, cols, 0f, 0f, invs[ra], w, b,
                            affineBase(from + ra), sOff);
                } else {
                    if (hasA) {
                        apply(kern, from + ra, 0, cols, 0f, 0f, invs[ra]);
                    }
                    if (hasS) {
                        ss = kern.sumSquares(x, sOff, cols);
                    }
                }
                if (hasS) {
                    double sumOfSquares = Moments.runSumOfSquares(ss, x, sOff, cols);
                    invs[rs] = RowKernels.invStd(p.mode(), sumOfSquares / cols, p.epsilon());
                    if (invOut != null) {
                        invOut[from + rs] = invs[rs];
                    }
                }
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
                        chunk.addShifted(kern, x, off + c0, len, shiftOf(x[off]));
                        cn[t] = chunk.count;
                        cmean[t] = chunk.mean;
                        cm2[t] = chunk.m2;
                    }
                }
            });
            float[] shifts = new float[rows];
            float[] means = new float[rows];
            float[] invs = new float[rows];
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
                if (!rms) {
                    shifts[r] = shiftOf(x[r * cols]);
                }
                means[r] = (float) row.mean;
                invs[r] = invStd(row, ss);
                publish(r, shifts[r], row, invs[r]);
            }
            parallel.forRange(tasks, CHUNK, (from, to) -> {
                RowKernels kern = kernels.fresh();
                for (int t = (int) from; t < to; t++) {
                    int r = t / chunks;
                    int c0 = (t % chunks) * CHUNK;
                    apply(kern, r, c0, Math.min(cols, c0 + CHUNK), shifts[r], means[r], invs[r]);
                }
            });
        }

        float invStd(Moments row, double sumOfSquares) {
            return rms ? RowKernels.invStd(p.mode(), sumOfSquares / cols, p.epsilon())
                    : RowKernels.invStd(p.mode(), row.variance(), p.epsilon());
        }

        /** Writes the saved statistics of row r. */
        void publish(int r, float shift, Moments row, float inv) {
            if (meanOut != null && row != null) {
                meanOut[r] = (float) (shift + row.mean);
            }
            if (invOut != null) {
                invOut[r] = inv;
            }
        }

        /**
         * {@code y = (((x - shift) - mean) * inv) * w + b} over columns {@code [c0, c1)} of row r, with
         * {@code w} and {@code b} per the plan's affine index.
         */
        void apply(RowKernels kern, long r, int c0, int c1, float shift, float mean, float inv) {
            int off = (int) (r * cols);
            int affineBase = affineBase(r);
            if (spatial == 1) {
                kern.normalizeAffine(x, y, off + c0, c1 - c0, shift, mean, inv, w, b, affineBase + c0);
                return;
            }
            // One affine entry per segment of `spatial` values (group and instance norm).
            int c = c0;
            while (c < c1) {
                int seg = c / spatial;
                int end = Math.min(c1, (seg + 1) * spatial);
                float ws = w != null ? w[affineBase + seg] : 1f;
                float bs = b != null ? b[affineBase + seg] : 0f;
                kern.normalizeUniform(x, y, off + c, end - c, shift, mean, inv, ws, bs);
                c = end;
            }
        }
    }
}
