package org.normcl.jvm;

import java.util.Arrays;

import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The Java backend's backward passes and given-statistics forward, on float32 arrays. Sums are
 * float32 over short runs ({@link GradKernels}) merged in double, and every reduction runs in an
 * order fixed by the shape (partials per fixed block, merged by index), so results are the same
 * bits whatever the thread count and scheduling. Rows laid out contiguously ({@link RowLayout})
 * compute dx and the parameter-gradient sums in one pass ({@link #rowNormBackward} returns the
 * sums for the {@link #affineGrad} that follows).
 */
final class JavaBackward {
    private JavaBackward() {
    }

    /** Row blocks of the parameter-gradient partial sums, at most: a partition fixed by the shape. */
    private static final int MAX_BLOCKS = 64;

    /**
     * Rows of 2 to 32 values, a power of two, with one affine entry each (group norm of (N, C) data)
     * go through {@link GradKernels#smallRows}: several rows a vector up to 8 values, a row's
     * vectors in registers at 16 and 32 (one thread, 8M values: rows of 16 13.3-15.7 -> 5.3-5.9 ms,
     * rows of 32 8.7-9.6 -> 4.4-5.2 ms). Rows of 64 in registers were no faster than the row kernels
     * (6.2-9.7 against 6.8-7.5 ms), so they keep those and their sums in double.
     */
    private static final int SMALL_ROW_MAX = 32;

    /** Rows shorter than this run in plain loops ({@link #shortRows}). */
    private static final int SHORT_ROW = 16;

    /** Rows per block, at least: the partial sums stay small next to the data. */
    private static final int MIN_BLOCK_ROWS = 32;

    /**
     * Partial sums (blocks x channels) of a column reduction, at most where {@link #MIN_BLOCKS} allows:
     * fresh partial arrays cost page faults and flushes (8192x1024 layer norm: 4.25 ms with 16 blocks,
     * 4.6-5.0 with 64; 1024x8192: 5.3 ms with 8 blocks, 6.4 with 32).
     */
    private static final int MAX_PARTIALS = 1 << 14;

    /** Blocks of a column reduction, at least (where there are rows enough): work for 16 threads. */
    private static final int MIN_BLOCKS = 16;

    /** Rows whose parameter-gradient terms are summed in float32 before they are added in double. */
    static final int SUB_ROWS = 16;

    /**
     * Contiguous rows as both plans can describe them: row r holds {@code cpg * spatial} values from
     * {@code r * cpg * spatial}, its statistic is entry r, and value q of it uses affine entry
     * {@code (r % groups) * cpg + q / spatial}. Layer and RMS norm (groups 1, spatial 1),
     * channels-first group and instance norm.
     */
    record RowLayout(int rows, int groups, int cpg, int spatial, boolean rms) {

        int len() {
            return cpg * spatial;
        }

        int channels() {
            return groups * cpg;
        }

        /** @return the layout of a plan whose rows are contiguous, or null */
        static RowLayout of(RowNormPlan p) {
            if (!p.isContiguous() || p.channelsPerGroup() * p.spatial() != p.cols()
                    || p.rows() * p.cols() > Integer.MAX_VALUE) {
                return null;
            }
            return new RowLayout((int) p.rows(), (int) p.groups(), (int) p.channelsPerGroup(), (int) p.spatial(),
                    p.mode() == StatMode.RMS);
        }

        /** @return the layout of the rows a parameter-gradient plan's statistics index, or null */
        static RowLayout of(AffineGradPlan p) {
            long groups = p.statsPerOuter();
            long cps = groups == 1 ? Math.min(p.channelsPerStat(), p.channels()) : p.channelsPerStat();
            if (p.outerPerStat() != 1 || groups < 1 || groups * cps != p.channels()
                    || p.outer() * p.channels() * p.inner() > Integer.MAX_VALUE) {
                return null;
            }
            return new RowLayout((int) (p.outer() * groups), (int) groups, (int) cps, (int) p.inner(), p.rms());
        }
    }

    /**
     * The parameter-gradient sums of one row backward pass, per affine entry ({@code scale} of dy *
     * xhat, {@code bias} of dy), and the layout and arrays they were computed from.
     */
    record Grads(RowLayout layout, float[] dy, float[] x, float[] mean, float[] inv, double[] scale,
            double[] bias) {

        /** @return whether these are the sums {@link #affineGrad} would compute for these arguments */
        boolean answers(AffineGradPlan p, float[] dy, float[] x, float[] mean, float[] inv) {
            return this.dy == dy && this.x == x && this.inv == inv && (layout.rms() || this.mean == mean)
                    && layout.equals(RowLayout.of(p));
        }

        void writeTo(float[] dScale, float[] dBias, float[] sums) {
            write(scale, bias, dScale, dBias, sums);
        }

        /** Gives the sums' arrays back to {@code scratch}: this object is not to be used after. */
        void release(ArrayPool scratch) {
            scratch.give(scale);
            scratch.give(bias);
        }
    }

    /** Rounds the sums into dScale, dBias and the interleaved {@code sums}, each where not null. */
    private static void write(double[] s, double[] b, float[] dScale, float[] dBias, float[] sums) {
        for (int c = 0; c < s.length; c++) {
            if (dScale != null) {
                dScale[c] = (float) s[c];
            }
            if (dBias != null) {
                dBias[c] = (float) b[c];
            }
            if (sums != null) {
                sums[2 * c] = (float) s[c];
                sums[2 * c + 1] = (float) b[c];
            }
        }
    }

    /**
     * dx of the rows of {@code l} (when {@code dx} is not null) and their parameter-gradient sums, in
     * float32 runs merged in double. The parameter gradients are reduced in two stages over a
     * partition fixed by the shape (never by the threads), so both computations give the same bits
     * on every run, with or without dx, on any number of threads.
     */
    static Grads rows(Parallel parallel, ArrayPool scratch, RowLayout l, float[] dy, float[] x, float[] scale,
            float[] mean, float[] inv, float[] dx) {
        int channels = l.channels();
        float[] w = scale == null ? RowNorm.ones(channels) : scale;
        double[] s = scratch.zeroedDoubles(channels);
        double[] b = scratch.zeroedDoubles(channels);
        if (l.spatial() == 1) {
            columnRows(parallel, scratch, l, dy, x, w, mean, inv, dx, s, b);
        } else {
            segmentRows(parallel, l, dy, x, w, mean, inv, dx, s, b);
        }
        return new Grads(l, dy, x, mean, inv, s, b);
    }

    /**
     * Rows with one affine entry per value (layer and RMS norm; group and instance norm of (N, C)
     * data): each row's sums in a first pass, dx and the per-entry parameter-gradient terms in a
     * second pass over the same row (from cache). An outer index is {@code groups} rows, which
     * together use every affine entry once; the terms are summed in float32 over {@link #SUB_ROWS}
     * outer indices, then in double per block of outer indices; the blocks are merged in order.
     */
    private static void columnRows(Parallel parallel, ArrayPool scratch, RowLayout l, float[] dy, float[] x,
            float[] w, float[] mean, float[] inv, float[] dx, double[] dScale, double[] dBias) {
        long cost = (dx == null ? 2L : 3L) * l.channels();
        columnBlocks(parallel, scratch, l.rows() / l.groups(), l.channels(), cost,
                (k, s0, s1, fs, fb) -> columnRowsRange(k, l, dy, x, w, mean, inv, dx, s0, s1, fs, fb), dScale, dBias);
    }

    /**
     * The rows of outer indices {@code [o0, o1)} of a {@link #columnRows} layout (spatial 1): dx where
     * {@code dx} is not null, and the parameter-gradient terms added into the float32 accumulators
     * {@code fs} and {@code fb}.
     */
    static void columnRowsRange(GradKernels k, RowLayout l, float[] dy, float[] x, float[] w, float[] mean,
            float[] inv, float[] dx, int o0, int o1, float[] fs, float[] fb) {
        int groups = l.groups();
        int len = l.len();
        // From one run a row (RUN values) up, two rows at a time (pairRows); shorter rows are slower
        // there (its per-pair bookkeeping is paid per row): 8192x1024 layer norm 7.9 -> 7.2 ms and
        // RMS norm 8.0 -> 7.0 ms in pairs, 16384x512 7.2 -> 7.7 ms (docs/performance.md).
        if (dx != null && groups == 1 && len >= RowKernels.RUN) {
            pairRows(k, l, dy, x, w, mean, inv, dx, o0, o1, fs, fb);
            return;
        }
        if (len == 1) {
            // Instance norm of (N, C) data: an outer index's rows are its channels, a vector's worth at a time.
            for (int o = o0; o < o1; o++) {
                k.singleValueRows(dy, x, w, mean, inv, dx, o * groups, 0, groups, l.rms(), fs, fb);
            }
            return;
        }
        if (len <= SMALL_ROW_MAX && Integer.bitCount(len) == 1) {
            int channels = l.channels();
            for (int o = o0; o < o1; o++) {
                k.smallRows(dy, x, w, mean, inv, dx, o * channels, 0, channels, len, l.rms(), fs, fb);
            }
            return;
        }
        if (len < SHORT_ROW) {
            shortRows(l, dy, x, w, mean, inv, dx, o0 * groups, o1 * groups, fs, fb);
            return;
        }
        float[] means = new float[2];
        for (int r = o0 * groups; r < o1 * groups; r++) {
            int off = r * len;
            int aoff = (r % groups) * len;
            float mu = l.rms() ? 0f : mean[r];
            if (dx == null) {
                k.accumulate(dy, x, off, aoff, len, mu, inv[r], fs, fb);
            } else {
                rowMeans(k, l, dy, x, w, r, mu, inv[r], means, 0);
                k.dxAccumulate(dy, x, w, dx, off, aoff, len, mu, inv[r], means[0], means[1], fs, fb);
            }
        }
    }

    /**
     * Rows {@code [r0, r1)} shorter than {@link #SHORT_ROW} (group and instance norm of (N, C) data), in
     * plain loops: a kernel call per row would cost more than its values. dx or not, the parameter
     * gradient terms take the same operations.
     */
    private static void shortRows(RowLayout l, float[] dy, float[] x, float[] w, float[] mean, float[] inv,
            float[] dx, int r0, int r1, float[] fs, float[] fb) {
        int len = l.len();
        int channels = l.channels();
        float perValue = 1f / len;
        int aoff = (r0 % l.groups()) * len - len;
        for (int r = r0; r < r1; r++) {
            int off = r * len;
            aoff = aoff + len == channels ? 0 : aoff + len; // (r % groups) * len, without a division per row
            float mu = l.rms() ? 0f : mean[r];
            float is = inv[r];
            float meanG = 0f;
            float meanGx = 0f;
            if (dx != null) {
                float g = 0f;
                float q = 0f;
                for (int i = 0; i < len; i++) {
                    float a = dy[off + i] * w[aoff + i];
                    g += a;
                    q = RowKernels.fma(a, (x[off + i] - mu) * is, q);
                }
                meanG = l.rms() ? 0f : g * perValue;
                meanGx = q * perValue;
            }
            GradKernels.plainDxAccumulate(dy, x, w, dx, off, aoff, len, mu, is, meanG, meanGx, fs, fb);
        }
    }

    /** Adds the parameter-gradient terms of outer indices {@code [o0, o1)} into {@code fs} and {@code fb}. */
    @FunctionalInterface
    private interface SubBlock {
        void run(GradKernels k, int o0, int o1, float[] fs, float[] fb);
    }

    /**
     * A column reduction over {@code outer} indices of {@code channels} entries each, in two stages:
     * {@code body} adds the terms of {@link #SUB_ROWS} outer indices at a time into float32
     * accumulators, which are added in double into the partial sums of a block of outer indices; the
     * blocks (a partition fixed by the shape) are merged in order into {@code s} and {@code b}. The
     * partial sums' arrays come from {@code scratch} and go back to it.
     */
    private static void columnBlocks(Parallel parallel, ArrayPool scratch, int outer, int channels, long costPerOuter,
            SubBlock body, double[] s, double[] b) {
        if (outer == 0) {
            return;
        }
        int blocks = Math.max(1, Math.min(Math.max(MIN_BLOCKS, Math.min(MAX_BLOCKS, MAX_PARTIALS / channels)),
                (outer + MIN_BLOCK_ROWS - 1) / MIN_BLOCK_ROWS));
        // Reused between calls (their contents are overwritten: every block has at least one outer
        // index, and its first sub-block stores): new partial arrays, 16 MiB for 512x65536, cost more
        // to zero and fault in than their sums take (layer norm backward 512x65536: 35 -> 30 ms).
        double[] partS = scratch.doubles(blocks * channels);
        double[] partB = scratch.doubles(blocks * channels);
        parallel.forRange(blocks, costPerOuter * outer / blocks, (from, to) -> {
            GradKernels k = GradKernels.best().fresh();
            float[] fs = scratch.zeroedFloats(channels);
            float[] fb = scratch.zeroedFloats(channels);
            for (int blk = (int) from; blk < to; blk++) {
                int o0 = blockStart(outer, blocks, blk);
                int o1 = blockStart(outer, blocks, blk + 1);
                int base = blk * channels;
                for (int s0 = o0; s0 < o1; s0 += SUB_ROWS) {
                    body.run(k, s0, Math.min(o1, s0 + SUB_ROWS), fs, fb);
                    // Flushed and zeroed in one pass over the accumulators (a separate fill was a
                    // second pass over 512 KiB for 65536 channels).
                    k.flushTerms(fs, fb, partS, partB, base, channels, s0 == o0);
                }
            }
            scratch.give(fs);
            scratch.give(fb);
        });
        mergeBlocks(parallel, blocks, channels, partS, partB, s, b);
        scratch.give(partS);
        scratch.give(partB);
    }

    /** @return the first outer index of block {@code blk} of {@code blocks} (the shape's fixed partition) */
    private static int blockStart(int outer, int blocks, int blk) {
        return (int) ((long) outer * blk / blocks);
    }

    /** Stores row r's mean(g) and mean(g * xhat) at {@code means[at]} and {@code means[at + 1]}. */
    private static void rowMeans(GradKernels k, RowLayout l, float[] dy, float[] x, float[] w, int r, float mu,
            float is, float[] means, int at) {
        int len = l.len();
        int off = r * len;
        int aoff = (r % l.groups()) * len;
        double sumG = 0;
        double sumGx = 0;
        for (int q = 0; q < len; q += RowKernels.RUN) {
            sumG += k.rowSums(dy, x, w, off + q, aoff + q, Math.min(RowKernels.RUN, len - q), mu, is);
            sumGx += k.second;
        }
        means[at] = l.rms() ? 0f : (float) (sumG / len);
        means[at + 1] = (float) (sumGx / len);
    }

    /**
     * Rows {@code [r0, r1)} of one group, of at least {@link RowKernels#RUN} values each (layer/RMS
     * norm), two rows at a time: the first pass takes both rows' sums and parameter-gradient terms
     * run by run (dY and X read from memory), so one read of each run's scale and one update of the
     * accumulators serve two rows; the second pass writes both rows' dx (dY and X again, from L2).
     * Each accumulator still takes the rows in order and each row's sums the runs in order: the
     * same bits as row by row ({@link #rowMeans}, {@link GradKernels#dxAccumulate}), which the
     * parameter-gradient-only pass takes. A software pipeline that overlapped a pair's first pass
     * with the previous pair's dx was slower: its two pairs (1 MiB of dY and X at 65536 values a
     * row) crowd L2 (512x65536 layer norm backward 37.3 -> 35.1 ms without it, 8192x1024 6.9 -> 6.6
     * ms; docs/performance.md).
     */
    private static void pairRows(GradKernels k, RowLayout l, float[] dy, float[] x, float[] w, float[] mean,
            float[] inv, float[] dx, int r0, int r1, float[] fs, float[] fb) {
        final int run = RowKernels.RUN;
        int len = l.len();
        boolean rms = l.rms();
        float[] sums = new float[4];
        double[] rowSums = new double[4];
        float[] means = new float[4]; // mean(g) and mean(g * xhat) of each row of the pair
        // The rows two at a time, the last alone when there is an odd count.
        for (int a = r0; a < r1; a += 2) {
            boolean two = a + 1 < r1;
            float muA = rms ? 0f : mean[a];
            float muB = two && !rms ? mean[a + 1] : 0f;
            Arrays.fill(rowSums, 0);
            for (int q = 0; q < len; q += run) {
                int n = Math.min(run, len - q);
                if (two) {
                    k.pairSumsAccumulate(dy, x, w, a * len + q, (a + 1) * len + q, q, n, muA, inv[a], muB, inv[a + 1],
                            fs, fb, sums);
                    rowSums[0] += sums[0];
                    rowSums[1] += sums[1];
                    rowSums[2] += sums[2];
                    rowSums[3] += sums[3];
                } else {
                    k.accumulate(dy, x, a * len + q, q, n, muA, inv[a], fs, fb);
                    rowSums[0] += k.rowSums(dy, x, w, a * len + q, q, n, muA, inv[a]);
                    rowSums[1] += k.second;
                }
            }
            for (int i = 0; i < 4; i += 2) {
                means[i] = rms ? 0f : (float) (rowSums[i] / len);
                means[i + 1] = (float) (rowSums[i + 1] / len);
            }
            for (int q = 0; q < len; q += run) {
                int n = Math.min(run, len - q);
                k.dx(dy, x, w, dx, a * len + q, q, n, muA, inv[a], means[0], means[1]);
                if (two) {
                    k.dx(dy, x, w, dx, (a + 1) * len + q, q, n, muB, inv[a + 1], means[2], means[3]);
                }
            }
        }
    }

    /**
     * Rows of several values per affine entry (channels-first group and instance norm): one pass sums
     * dy and dy * xhat per (row, entry), which give both the row's sums (times the entry's scale) and
     * the entry's parameter-gradient terms; a second pass over the row writes dx.
     */
    private static void segmentRows(Parallel parallel, RowLayout l, float[] dy, float[] x, float[] w, float[] mean,
            float[] inv, float[] dx, double[] dScale, double[] dBias) {
        int rows = l.rows();
        int len = l.len();
        int cpg = l.cpg();
        int spatial = l.spatial();
        // Entry (row r, j) is r * cpg + j = o * channels + affine entry: the partial row of outer index o.
        double[] partS = new double[rows * cpg];
        double[] partB = new double[rows * cpg];
        float[] ones = RowNorm.ones(RowKernels.RUN);
        parallel.forRange(rows, (dx == null ? 2L : 3L) * len, (from, to) -> {
            GradKernels k = GradKernels.best().fresh();
            for (int r = (int) from; r < to; r++) {
                int off = r * len;
                int aoff = (r % l.groups()) * cpg;
                float mu = l.rms() ? 0f : mean[r];
                float is = inv[r];
                double sumG = 0;
                double sumGx = 0;
                for (int j = 0; j < cpg; j++) {
                    double sd = 0;
                    double sdx = 0;
                    for (int q = 0; q < spatial; q += RowKernels.RUN) {
                        // With a scale of ones, g is dy (exactly) and the sums are those of dy and dy * xhat.
                        sd += k.rowSums(dy, x, ones, off + j * spatial + q, 0, Math.min(RowKernels.RUN, spatial - q),
                                mu, is);
                        sdx += k.second;
                    }
                    partB[r * cpg + j] = sd;
                    partS[r * cpg + j] = sdx;
                    sumG += w[aoff + j] * sd;
                    sumGx += w[aoff + j] * sdx;
                }
                if (dx != null) {
                    float meanG = l.rms() ? 0f : (float) (sumG / len);
                    float meanGx = (float) (sumGx / len);
                    for (int j = 0; j < cpg; j++) {
                        k.dxUniform(dy, x, dx, off + j * spatial, spatial, mu, is, w[aoff + j], meanG, meanGx);
                    }
                }
            }
        });
        mergeBlocks(parallel, rows / l.groups(), l.channels(), partS, partB, dScale, dBias);
    }

    /**
     * Stage 2: {@code s[c] = sum over blocks of partS[blk * channels + c]} in block order (and b from
     * partB), channels spread over the threads: each channel's order is the same on any number.
     */
    private static void mergeBlocks(Parallel parallel, int blocks, int channels, double[] partS, double[] partB,
            double[] s, double[] b) {
        parallel.forRange(channels, 2L * blocks, (c0, c1) -> {
            for (int blk = 0; blk < blocks; blk++) {
                int base = blk * channels;
                for (int c = (int) c0; c < c1; c++) {
                    s[c] += partS[base + c];
                    b[c] += partB[base + c];
                }
            }
        });
    }

    /**
     * dx of each row: invStd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w; with the
     * parameter-gradient sums when the rows are contiguous ({@link RowLayout}), for the
     * {@link #affineGrad} that follows on the same data.
     *
     * @return the parameter-gradient sums computed along, or null (rows in segments)
     */
    static Grads rowNormBackward(Parallel parallel, ArrayPool scratch, RowNormPlan p, float[] dy, float[] x,
            float[] scale, float[] mean, float[] inv, float[] dx) {
        RowLayout l = RowLayout.of(p);
        if (l != null) {
            return rows(parallel, scratch, l, dy, x, scale, mean, inv, dx);
        }
        segmentedRowBackward(parallel, p, dy, x, scale, mean, inv, dx);
        return null;
    }

    /** dx of rows in segments (channels-last group norm): the general loop, in double. */
    private static void segmentedRowBackward(Parallel parallel, RowNormPlan p, float[] dy, float[] x, float[] scale,
            float[] mean, float[] inv, float[] dx) {
        int cols = (int) p.cols();
        int segs = (int) p.segments();
        int len = (int) p.segmentLength();
        int spatial = (int) p.spatial();
        boolean rms = p.mode() == StatMode.RMS;
        parallel.forRange(p.rows(), 3L * cols, (from, to) -> {
            for (int r = (int) from; r < to; r++) {
                int base = (int) p.rowBase(r);
                int stride = (int) p.segmentStride();
                int aff = (int) ((r % p.groups()) * p.channelsPerGroup());
                float mu = rms ? 0f : mean[r];
                float is = inv[r];
                double sumG = 0;
                double sumGx = 0;
                for (int i = 0; i < segs; i++) {
                    int off = base + i * stride;
                    if (spatial == 1) {
                        // Four double accumulators: one would wait on the adder's latency every value.
                        double g0 = 0, g1 = 0, g2 = 0, g3 = 0, x0 = 0, x1 = 0, x2 = 0, x3 = 0;
                        int q = 0;
                        for (; q + 4 <= len; q += 4) {
                            int j = off + q;
                            double a0 = (double) dy[j] * (scale == null ? 1f : scale[aff + q]);
                            double a1 = (double) dy[j + 1] * (scale == null ? 1f : scale[aff + q + 1]);
                            double a2 = (double) dy[j + 2] * (scale == null ? 1f : scale[aff + q + 2]);
                            double a3 = (double) dy[j + 3] * (scale == null ? 1f : scale[aff + q + 3]);
                            g0 += a0;
                            g1 += a1;
                            g2 += a2;
                            g3 += a3;
                            x0 += a0 * ((x[j] - mu) * is);
                            x1 += a1 * ((x[j + 1] - mu) * is);
                            x2 += a2 * ((x[j + 2] - mu) * is);
                            x3 += a3 * ((x[j + 3] - mu) * is);
                        }
                        for (; q < len; q++) {
                            double a = (double) dy[off + q] * (scale == null ? 1f : scale[aff + q]);
                            g0 += a;
                            x0 += a * ((x[off + q] - mu) * is);
                        }
                        sumG += (g0 + g1) + (g2 + g3);
                        sumGx += (x0 + x1) + (x2 + x3);
                        continue;
                    }
                    for (int q0 = 0; q0 < len; q0 += spatial) {
                        float w = scale == null ? 1f : scale[aff + q0 / spatial];
                        int end = Math.min(len, q0 + spatial);
                        for (int q = q0; q < end; q++) {
                            double g = (double) dy[off + q] * w;
                            sumG += g;
                            sumGx += g * ((x[off + q] - mu) * is);
                        }
                    }
                }
                float meanG = rms ? 0f : (float) (sumG / cols);
                float meanGx = (float) (sumGx / cols);
                for (int i = 0; i < segs; i++) {
                    int off = base + i * stride;
                    for (int q0 = 0; q0 < len; q0 += spatial) {
                        int end = Math.min(len, q0 + spatial);
                        if (spatial == 1) {
                            end = len; // one affine entry per value: one loop the JIT vectorizes
                            for (int q = q0; q < end; q++) {
                                float w = scale == null ? 1f : scale[aff + q];
                                float xhat = (x[off + q] - mu) * is;
                                dx[off + q] = is * (dy[off + q] * w - meanG - xhat * meanGx);
                            }
                            break;
                        }
                        float w = scale == null ? 1f : scale[aff + q0 / spatial];
                        for (int q = q0; q < end; q++) {
                            float xhat = (x[off + q] - mu) * is;
                            dx[off + q] = is * (dy[off + q] * w - meanG - xhat * meanGx);
                        }
                    }
                }
            }
        });
    }

    /**
     * dScale[c] = sum dy * xhat, dBias[c] = sum dy over (o, s) of channel c, in fixed-order two
     * stages; {@code sums} (if not null) receives both unrounded, interleaved. {@code computed}: the
     * sums a {@link #rowNormBackward} returned, used when they are of the same plan and arrays.
     */
    static void affineGrad(Parallel parallel, ArrayPool scratch, AffineGradPlan p, float[] dy, float[] x,
            float[] mean, float[] inv, float[] dScale, float[] dBias, float[] sums, Grads computed) {
        if (computed != null && computed.answers(p, dy, x, mean, inv)) {
            computed.writeTo(dScale, dBias, sums);
            return;
        }
        RowLayout l = RowLayout.of(p);
        if (l != null) {
            Grads g = rows(parallel, scratch, l, dy, x, null, mean, inv, null);
            g.writeTo(dScale, dBias, sums);
            g.release(scratch);
            return;
        }
        if (p.inner() == 1 && p.statsPerOuter() == 0 && p.channelsPerStat() == 1 && !p.rms()
                && p.outer() * p.channels() <= Integer.MAX_VALUE) {
            // Batch norm of (N, C) data: statistic c for column c.
            int c = (int) p.channels();
            double[] s = new double[c];
            double[] b = new double[c];
            columnBlocks(parallel, scratch, (int) p.outer(), c, 2L * c, (k, o0, o1, fs, fb) -> {
                for (int o = o0; o < o1; o++) {
                    k.accumulateColumns(dy, x, o * c, c, mean, inv, fs, fb);
                }
            }, s, b);
            write(s, b, dScale, dBias, sums);
            return;
        }
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        long outer = p.outer();
        // Stage 1: blocks of outer indices, each summing every channel into its own partial row; the
        // partition depends on the shape only, so the bits do not depend on the thread count.
        int blocks = (int) Math.max(1, Math.min(outer, MAX_BLOCKS));
        double[] partScale = new double[blocks * channels];
        double[] partBias = new double[blocks * channels];
        float[] ones = RowNorm.ones(RowKernels.RUN);
        parallel.forRange(blocks, outer * channels * inner / blocks, (from, to) -> {
            GradKernels k = GradKernels.best().fresh();
            for (int blk = (int) from; blk < to; blk++) {
                long o0 = outer * blk / blocks;
                long o1 = outer * (blk + 1) / blocks;
                int rowBase = blk * channels;
                for (long o = o0; o < o1; o++) {
                    if (inner == 1) {
                        rowIntoColumns(p, o, channels, dy, x, mean, inv, partScale, partBias, rowBase);
                        continue;
                    }
                    for (int c = 0; c < channels; c++) {
                        int si = (int) p.statIndex(o, c);
                        float mu = p.rms() ? 0f : mean[si];
                        float is = inv[si];
                        int off = (int) ((o * channels + c) * inner);
                        double sd = 0;
                        double sdx = 0;
                        for (int q = 0; q < inner; q += RowKernels.RUN) { // g = dy * 1: sums of dy, dy * xhat
                            sd += k.rowSums(dy, x, ones, off + q, 0, Math.min(RowKernels.RUN, inner - q), mu, is);
                            sdx += k.second;
                        }
                        partScale[rowBase + c] += sdx;
                        partBias[rowBase + c] += sd;
                    }
                }
            }
        });
        // Stage 2: sum the partial rows in block order.
        double[] s = new double[channels];
        double[] b = new double[channels];
        mergeBlocks(parallel, blocks, channels, partScale, partBias, s, b);
        write(s, b, dScale, dBias, sums);
    }

    /**
     * Stage 1 of {@link #affineGrad} for one row o of an (outer, channels) matrix (inner == 1): adds
     * dy and dy * xhat of each column to its partial sums, as the general loop does (the same
     * double operations in the same order), with the statistic index worked out once per row where
     * it does not depend on the column (layer/RMS norm) or is the column itself.
     */
    private static void rowIntoColumns(AffineGradPlan p, long o, int channels, float[] dy, float[] x, float[] mean,
            float[] inv, double[] partScale, double[] partBias, int rowBase) {
        int off = (int) (o * channels);
        long statRow = p.statIndex(o, 0);
        long perStat = p.channelsPerStat();
        if (perStat >= channels) {
            float mu = p.rms() ? 0f : mean[(int) statRow];
            float is = inv[(int) statRow];
            for (int c = 0; c < channels; c++) {
                double d = dy[off + c];
                partScale[rowBase + c] += d * (x[off + c] - mu) * is;
                partBias[rowBase + c] += d;
            }
        } else {
            for (int c = 0; c < channels; c++) {
                int si = (int) (statRow + c / perStat);
                float mu = p.rms() ? 0f : mean[si];
                double d = dy[off + c];
                partScale[rowBase + c] += d * (x[off + c] - mu) * inv[si];
                partBias[rowBase + c] += d;
            }
        }
    }

    /**
     * @return whether {@link #channelBackwardWithGrad} applies: channels-first segments, and enough
     *     channels to share among the threads. There is no size limit: a channel the L2 cannot hold
     *     is read back from L3, or at worst from memory, as the unfused passes would read it.
     */
    static boolean fusesChannelBackward(ChannelPlan p, int threads) {
        return p.inner() > 1 && p.outer() * p.channels() * p.inner() <= Integer.MAX_VALUE
                && p.channels() >= 4L * threads;
    }

    /**
     * Batch-norm backward of channels-first data, a range of channels per task: each channel's sums
     * of dy * xhat and dy taken exactly as {@link #affineGrad} takes them (a double partial per block
     * of outer indices, the blocks added in order), and its dx as {@link #channelBackward} computes
     * it. The same bits as those two calls; dY and X are read from memory once instead of twice. In
     * training, as a software pipeline: channel c - 1's dx is written in the loops that take channel
     * c's sums ({@link GradKernels#channelDxThenSums}), from cache while channel c streams in.
     * Requires {@link #fusesChannelBackward}.
     */
    static void channelBackwardWithGrad(Parallel parallel, ChannelPlan p, boolean training, float[] dy, float[] x,
            float[] mean, float[] inv, float[] scale, float[] dScale, float[] dBias, float[] dx) {
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        long outer = p.outer();
        int blocks = (int) Math.max(1, Math.min(outer, MAX_BLOCKS)); // affineGrad's partition
        double m = p.perChannel();
        float[] ones = RowNorm.ones(RowKernels.RUN);
        parallel.forRange(channels, 3L * p.perChannel(), (from, to) -> {
            GradKernels k = GradKernels.best().fresh();
            // The channel whose dx is pending (training): its statistics and factors.
            float muA = 0f;
            float isA = 0f;
            float kcA = 0f;
            float meanDyA = 0f;
            float meanDyXhatA = 0f;
            for (int c = (int) from; c < to; c++) {
                boolean pending = training && c > from;
                float mu = mean[c];
                float is = inv[c];
                double s = 0;
                double b = 0;
                for (int blk = 0; blk < blocks; blk++) {
                    long o0 = outer * blk / blocks;
                    long o1 = outer * (blk + 1) / blocks;
                    double partS = 0;
                    double partB = 0;
                    for (long o = o0; o < o1; o++) {
                        int off = (int) ((o * channels + c) * inner);
                        double sd = 0;
                        double sdx = 0;
                        for (int q = 0; q < inner; q += RowKernels.RUN) {
                            int n = Math.min(RowKernels.RUN, inner - q);
                            sd += pending
                                    ? k.channelDxThenSums(dy, x, dx, off + q - inner, muA, isA, kcA, meanDyA,
                                            meanDyXhatA, off + q, n, mu, is, ones)
                                    : k.rowSums(dy, x, ones, off + q, 0, n, mu, is);
                            sdx += k.second;
                        }
                        partS += sdx;
                        partB += sd;
                    }
                    s += partS;
                    b += partB;
                }
                if (dScale != null) {
                    dScale[c] = (float) s;
                }
                if (dBias != null) {
                    dBias[c] = (float) b;
                }
                // channelBackward's factors, from the sums as affineGrad rounds them into `sums`.
                float kc = (scale == null ? 1f : scale[c]) * is;
                if (!training) {
                    for (long o = 0; o < outer; o++) {
                        int off = (int) ((o * channels + c) * inner);
                        for (int i = off; i < off + inner; i++) {
                            dx[i] = dy[i] * kc;
                        }
                    }
                    continue;
                }
                muA = mu;
                isA = is;
                kcA = kc;
                meanDyXhatA = (float) ((float) s / m);
                meanDyA = (float) ((float) b / m);
            }
            if (training) { // the last channel's dx, alone
                for (long o = 0; o < outer; o++) {
                    k.channelDx(dy, x, dx, (int) ((o * channels + to - 1) * inner), inner, muA, isA, kcA, meanDyA,
                            meanDyXhatA);
                }
            }
        });
    }

    /**
     * Batch-norm dx: training uses the per-channel sums; inference treats the statistics as constants.
     * The per-channel factors are worked out once (with (N, C) data a segment is one value).
     */
    static void channelBackward(Parallel parallel, ChannelPlan p, long count, float[] dy, float[] x, float[] mean,
            float[] inv, float[] scale, float[] sums, float[] dx) {
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        double m = count;
        float[] ks = new float[channels];
        float[] meanDyXhat = new float[channels];
        float[] meanDy = new float[channels];
        for (int c = 0; c < channels; c++) {
            ks[c] = (scale == null ? 1f : scale[c]) * inv[c];
            if (sums != null) {
                meanDyXhat[c] = (float) (sums[2 * c] / m);
                meanDy[c] = (float) (sums[2 * c + 1] / m);
            }
        }
        if (inner == 1) {
            // (N, C) data: a row of channels at a time, in GradKernels.columnDx, on the Vector API where
            // the JVM has it: the plain loop, seven arrays and the choice of formula inside, ran as
            // scalar code (8192x1024: 11.5-14.8 ms, 8.7-9.3 in GradKernels).
            parallel.forRange(p.outer(), 2L * channels, (from, to) -> {
                GradKernels k = GradKernels.best().fresh();
                for (int off = (int) from * channels; off < (int) to * channels; off += channels) {
                    if (sums == null) {
                        k.columnDxNoSums(dy, dx, off, channels, ks);
                    } else {
                        k.columnDx(dy, x, dx, off, channels, mean, inv, ks, meanDy, meanDyXhat);
                    }
                }
            });
            return;
        }
        parallel.forRange(p.outer() * channels, 2L * inner, (from, to) -> {
            GradKernels g = GradKernels.best().fresh();
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                int off = (int) (seg * inner);
                float k = ks[c];
                if (sums == null) {
                    for (int i = off; i < off + inner; i++) {
                        dx[i] = dy[i] * k;
                    }
                } else {
                    g.channelDx(dy, x, dx, off, inner, mean[c], inv[c], k, meanDy[c], meanDyXhat[c]);
                }
            }
        });
    }

    /** y = ((x - mean[row]) - meanLo[row]) * invStd[row] * w + b, with given statistics (meanLo may be null). */
    static void rowApply(Parallel parallel, RowNormPlan p, float[] x, float[] mean, float[] meanLo, float[] inv,
            float[] scale, float[] bias, float[] y) {
        int segs = (int) p.segments();
        int len = (int) p.segmentLength();
        boolean rms = p.mode() == StatMode.RMS;
        float[] w = p.hasScale() ? scale : null;
        float[] b = p.hasBias() ? bias : null;
        parallel.forRange(p.rows(), p.cols(), (from, to) -> {
            for (int r = (int) from; r < to; r++) {
                int base = (int) p.rowBase(r);
                int aff = (int) ((r % p.groups()) * p.channelsPerGroup());
                for (int i = 0; i < segs; i++) {
                    FloatKernels.applySegment(x, y, base + i * (int) p.segmentStride(), len, aff, (int) p.spatial(),
                            rms ? 0f : mean[r], rms || meanLo == null ? 0f : meanLo[r], inv[r], w, b);
                }
            }
        });
    }
}
