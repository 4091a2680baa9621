package org.normcl.jvm;

import java.util.Arrays;

import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RunningUpdate;

/**
 * The Java backend's per-channel statistics and apply (batch norm, MVN over all but a channel
 * block), on X viewed as (outer, channels, inner).
 *
 * <p>The statistics' reduction order is fixed by the shape alone:
 * <ul>
 *   <li>{@code inner >= }{@link #COLUMN_INNER}: each channel's {@code outer * inner} values are
 *       split into parts of about {@link #PART} values; a part is reduced segment by segment in runs
 *       of {@link RowKernels#RUN}, each in one pass from its own shift and merged in order
 *       ({@link Moments#mergeRunOnePass}, as the rows of layer norm); the parts are merged in order.
 *   <li>smaller {@code inner} (down to the (N, C) matrix of a 1-D batch norm, where a channel is a
 *       strided column): X is a matrix of {@code outer} rows of {@code channels * inner} columns;
 *       blocks of {@link #BLOCK} rows are reduced per column with vector lanes across columns, in one
 *       pass (the sums of {@code x - shift} and of its squares, the shift being the mean of the
 *       channel's first values; a column whose block would cancel is redone in two passes, see
 *       {@link Moments#onePassM2}) and merged into the channel in order (block, then column); parts
 *       of the rows are merged in order.
 * </ul>
 * So results never depend on the thread count or scheduling.
 */
final class ChannelNorm {
    /** Below this many contiguous values per (outer, channel) segment, channels are treated as columns. */
    static final int COLUMN_INNER = 64;
    /** Values per part of a channel (the unit of parallel work and of the fixed merge order). */
    static final long PART = 1 << 16;
    /** Rows per block of the column path: one run per column. */
    static final int BLOCK = 64;
    /** Values averaged for a channel's shift on the column path ({@link #columnShifts}): a block's worth. */
    static final int COLUMN_SHIFT_VALUES = BLOCK;
    /**
     * Rows of at least this many values (2 KiB of float32) are summed eight rows at a time
     * ({@link RowKernels#columnSumAndSquaresByRows}) rather than in strips of columns walking down
     * the block, which read one line of each row in turn. Batch norm forward, Zen 5, two threads,
     * a JVM a shape: 8192x1024 2.9-3.9 -> 2.6-2.9 ms, 16384x512 2.7-2.9 -> 2.5-2.6; rows of 128
     * values were slower row by row (2.3-2.4 -> 2.9-3.1 ms; docs/performance.md, 2026-11-29).
     */
    static final int ROW_MAJOR_WIDTH = 512;
    /** Columns per tile of the column path, so a block's per-column sums stay in L1. */
    static final int TILE = 2048;

    private final RowKernels kernels;
    private final Parallel parallel;

    /** Where the statistics' per-part moments come from and go back to. */
    private final ArrayPool scratch;

    ChannelNorm(RowKernels kernels, Parallel parallel, ArrayPool scratch) {
        this.kernels = kernels;
        this.parallel = parallel;
        this.scratch = scratch;
    }

    /**
     * See {@link org.normcl.backend.Backend#channelStats}; requires {@code perChannel >= 1};
     * {@code meanLo} may be null.
     */
    void stats(ChannelPlan p, float[] x, float[] mean, float[] meanLo, float[] inv, RunningUpdate update,
            float[] rmIn, float[] rvIn, float[] rmOut, float[] rvOut) {
        int channels = Math.toIntExact(p.channels());
        boolean columns = p.inner() < COLUMN_INNER;
        // The column path's moments are of x - shift; the segment path's of x itself.
        float[] shift = columns ? columnShifts(p, x) : new float[channels];
        Partials parts = columns ? columnPartials(p, x, shift) : segmentPartials(p, x);
        // Channels over the threads: each merges its parts in order (8192x1024's 32 parts a channel
        // took 0.35 ms on one thread).
        parallel.forRange(channels, 8L * parts.parts, (c0, c1) -> {
            Moments m = new Moments();
            for (int c = (int) c0; c < c1; c++) {
                m.reset();
                for (int part = 0; part < parts.parts; part++) {
                    int t = parts.index(c, part);
                    m.merge(parts.n[t], parts.mean[t], parts.m2[t]);
                }
                finishChannel(p, c, shift[c], m, mean, meanLo, inv, update, rmIn, rvIn, rmOut, rvOut);
            }
        });
        parts.release(scratch);
    }

    /** Channel c's saved statistics (and running ones) from its merged moments of values shifted by {@code shift}. */
    private static void finishChannel(ChannelPlan p, int c, float shift, Moments m, float[] mean, float[] meanLo,
            float[] inv, RunningUpdate update, float[] rmIn, float[] rvIn, float[] rmOut, float[] rvOut) {
        double exactMean = shift + m.mean;
        float batchMean = (float) exactMean;
        float batchVar = (float) m.variance();
        mean[c] = batchMean;
        if (meanLo != null) {
            meanLo[c] = (float) (exactMean - batchMean); // the float32 mean's rounding error
        }
        inv[c] = RowKernels.invStd(p.mode(), batchVar, p.epsilon());
        if (update != null) {
            float v = update.unbiased() ? (float) (m.m2 / (m.count - 1)) : batchVar;
            float w = update.batchWeight();
            rmOut[c] = rmIn[c] * (1f - w) + batchMean * w;
            rvOut[c] = rvIn[c] * (1f - w) + v * w;
        }
    }

    /**
     * Whether {@link #statsAndApply} fuses this plan: channels of contiguous segments, and enough
     * channels to share among the threads channel by channel. There is no size limit: a channel
     * the L2 cannot hold is read back from L3, or at worst from memory as {@link #stats} then
     * {@link #apply} would read it (float32, alternating JVMs on a Zen 5 host: 2 MiB channels 6.5 ->
     * 4.2-4.6 ms, 4 MiB 8.2-8.4 -> 5.9, 8 MiB 15.2-16.0 -> 12.0-12.3, 16 MiB 33-46 -> 29-41 fused;
     * docs/performance.md).
     */
    static boolean fuses(ChannelPlan p, int threads) {
        return p.inner() >= COLUMN_INNER && p.channels() >= 4L * threads;
    }

    /**
     * {@link #stats} then {@link #apply}, as a software pipeline over each thread's channels: the
     * statistics of channel c are reduced and merged exactly as {@link #stats} does (so the same
     * bits) while channel c - 1, whose statistics are done and whose values are still in cache, is
     * normalized run by run in the same loops ({@link RowKernels#normalizeUniformSumAndSquaresNext}):
     * X streams in from memory while the previous channel is written. Requires {@link #fuses}.
     */
    void statsAndApply(ChannelPlan p, float[] x, float[] mean, float[] meanLo, float[] inv, RunningUpdate update,
            float[] rmIn, float[] rvIn, float[] rmOut, float[] rvOut, float[] scale, float[] bias, float[] y) {
        int channels = Math.toIntExact(p.channels());
        int parts = partsPerChannel(p);
        long outer = p.outer();
        int inner = (int) p.inner();
        parallel.forRange(channels, p.perChannel(), (from, to) -> {
            RowKernels kern = kernels.fresh();
            Moments part = new Moments();
            Moments m = new Moments();
            Apply previous = new Apply();
            for (int c = (int) from; c < to; c++) {
                m.reset();
                for (int t = 0; t < parts; t++) {
                    partMoments(p, x, kern, c, t, parts, part, c > from ? previous : null, y);
                    m.merge(part.count, part.mean, part.m2);
                }
                finishChannel(p, c, 0f, m, mean, meanLo, inv, update, rmIn, rvIn, rmOut, rvOut);
                previous.k = mean[c];
                previous.m = meanLo != null ? meanLo[c] : 0f;
                previous.inv = inv[c];
                previous.w = scale != null ? scale[c] : 1f;
                previous.b = bias != null ? bias[c] : 0f;
            }
            for (long o = 0; o < outer; o++) { // the last channel's normalization, alone
                kern.normalizeUniform(x, y, (int) ((o * channels + to - 1) * inner), inner, previous.k, previous.m,
                        previous.inv, previous.w, previous.b);
            }
        });
    }

    /** The normalization of one channel: {@code fma(((x - k) - m) * inv, w, b)}. */
    private static final class Apply {
        float k;
        float m;
        float inv;
        float w;
        float b;
    }

    /**
     * Moments of each (channel, part) at {@link #index}: the entries one task writes are adjacent,
     * channel-major ({@code c * parts + part}) where a task is one (channel, part), part-major
     * ({@code part * channels + c}) where a task is a part of every channel (the column path). The
     * other way round, the two threads' tasks write into the same cache lines: on 8192x1024 that
     * false sharing cost about as much as the column sums themselves. The arrays come from the
     * backend's scratch pool (every entry is written before it is read): new ones per call would
     * land on heap pages the JVM may not have touched yet, a page fault per 4 KiB (batch norm of
     * (N, C) data, 8192x1024: 786 KiB a call).
     */
    private record Partials(int channels, int parts, boolean partMajor, double[] n, double[] mean, double[] m2) {
        static Partials take(ArrayPool scratch, int channels, int parts, boolean partMajor) {
            int size = channels * parts;
            return new Partials(channels, parts, partMajor, scratch.doubles(size), scratch.doubles(size),
                    scratch.doubles(size));
        }

        int index(int c, int part) {
            return partMajor ? part * channels + c : c * parts + part;
        }

        void release(ArrayPool scratch) {
            scratch.give(n);
            scratch.give(mean);
            scratch.give(m2);
        }
    }

    /** @return the parts each channel's values are split into (by the shape alone) */
    private static int partsPerChannel(ChannelPlan p) {
        long perChannel = p.perChannel();
        return (int) Math.max(1, Math.min((perChannel + PART - 1) / PART, Integer.MAX_VALUE / 4 / p.channels()));
    }

    private Partials segmentPartials(ChannelPlan p, float[] x) {
        int channels = (int) p.channels();
        int parts = partsPerChannel(p);
        Partials out = Partials.take(scratch, channels, parts, false);
        parallel.forRange((long) channels * parts, p.perChannel() / parts, (from, to) -> {
            RowKernels kern = kernels.fresh();
            Moments m = new Moments();
            for (long t = from; t < to; t++) {
                int c = (int) (t / parts);
                int part = (int) (t % parts);
                partMoments(p, x, kern, c, part, parts, m, null, null);
                int i = out.index(c, part);
                out.n[i] = m.count;
                out.mean[i] = m.mean;
                out.m2[i] = m.m2;
            }
        });
        return out;
    }

    /**
     * Sets {@code m} to the moments of part {@code part} of channel c's values, each run of
     * {@link RowKernels#RUN} taken in one pass from its own shift and merged in order
     * ({@link Moments#mergeRunOnePass}). With {@code apply}, also normalizes the same positions of
     * channel c - 1 (the values {@code inner} before) into {@code y}, in the loops that read channel
     * c's runs.
     */
    private static void partMoments(ChannelPlan p, float[] x, RowKernels kern, int c, int part, int parts,
            Moments m, Apply apply, float[] y) {
        long perChannel = p.perChannel();
        long channels = p.channels();
        long inner = p.inner();
        long begin = perChannel * part / parts;
        long end = perChannel * (part + 1) / parts;
        m.reset();
        long o = begin / inner;
        long s = begin % inner;
        long v = begin;
        while (v < end) {
            int len = (int) Math.min(inner - s, end - v);
            int off = (int) ((o * channels + c) * inner + s);
            for (int q = off; q < off + len; q += RowKernels.RUN) {
                int n = Math.min(RowKernels.RUN, off + len - q);
                float k = Moments.runShift(x, q, n);
                float sum = apply == null ? kern.sumAndSquaresShifted(x, q, n, k)
                        : kern.normalizeUniformSumAndSquaresNext(x, y, q - (int) inner, n, apply.k, apply.m,
                                apply.inv, apply.w, apply.b, q, k);
                m.mergeRunOnePass(kern, x, q, n, k, sum, kern.squares);
            }
            v += len;
            o++;
            s = 0;
        }
    }

    /**
     * The shifts of the column path: channel c's float32 mean of its first
     * {@link #COLUMN_SHIFT_VALUES} values (in memory order), or its first value when that mean is
     * not finite. Close to the channel's mean, so a block's one-pass statistics rarely cancel
     * ({@link Moments#onePassM2}). From 16 values, a block's mean sat more than 0.7 standard
     * deviations from the shift (the redo threshold) in about 2% of the blocks of normal data, and
     * redoing those in two passes took about as long as all the column sums (8192x1024: 2404
     * columns of 131072 a call); from a block's worth, about 1 in 10^4.
     */
    static float[] columnShifts(ChannelPlan p, float[] x) {
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        int width = channels * inner;
        int n = (int) Math.min(COLUMN_SHIFT_VALUES, p.outer() * inner);
        float[] shift = new float[channels];
        if (inner == 1) {
            // Row by row, so X is read contiguously; each channel still adds its values in order.
            for (int r = 0; r < n; r++) {
                int off = r * width;
                for (int c = 0; c < channels; c++) {
                    shift[c] += x[off + c];
                }
            }
        } else {
            for (int c = 0; c < channels; c++) {
                for (int i = 0; i < n; i++) {
                    shift[c] += x[(i / inner) * width + c * inner + i % inner];
                }
            }
        }
        for (int c = 0; c < channels; c++) {
            float k = shift[c] / n;
            shift[c] = Float.isFinite(k) ? k : RowNorm.shiftOf(x[c * inner]);
        }
        return shift;
    }

    private Partials columnPartials(ChannelPlan p, float[] x, float[] shift) {
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        int outer = (int) p.outer();
        int width = channels * inner;
        float[] colShift = expand(shift, inner);
        // Rows per part: whole blocks, about 4 * PART values of the matrix.
        int blocksPerPart = (int) Math.max(1, PART * 4 / ((long) BLOCK * width));
        int partRows = blocksPerPart * BLOCK;
        int parts = (outer + partRows - 1) / partRows;
        Partials out = Partials.take(scratch, channels, parts, true);
        parallel.forRange(parts, (long) partRows * width, (from, to) -> {
            RowKernels kern = kernels.fresh();
            int tile = Math.min(TILE, width);
            float[] acc = new float[tile];
            float[] q = new float[tile];
            // One column per channel (inner 1): every channel has seen the same count, so the merge
            // factors are shared and the moments live in flat arrays (Moments.merge, element by element).
            double[] colMean = inner == 1 ? new double[channels] : null;
            double[] colM2 = inner == 1 ? new double[channels] : null;
            Moments[] ch = new Moments[inner == 1 ? 0 : channels];
            for (int c = 0; c < ch.length; c++) {
                ch[c] = new Moments();
            }
            Moments exact = new Moments();
            for (int part = (int) from; part < to; part++) {
                for (Moments m : ch) {
                    m.reset();
                }
                double count = 0;
                int r0 = part * partRows;
                int r1 = Math.min(outer, r0 + partRows);
                for (int b0 = r0; b0 < r1; b0 += BLOCK) {
                    int rows = Math.min(BLOCK, r1 - b0);
                    double total = count + rows;
                    double f = rows / total; // Moments.merge's nB / n
                    double g = count * rows / total; // and count * nB / n
                    for (int j0 = 0; j0 < width; j0 += tile) {
                        int tw = Math.min(tile, width - j0);
                        int off = b0 * width + j0;
                        if (width >= ROW_MAJOR_WIDTH) {
                            kern.columnSumAndSquaresByRows(x, off, width, rows, tw, colShift, j0, acc, q);
                        } else {
                            kern.columnSumAndSquares(x, off, width, rows, tw, colShift, j0, acc, q);
                        }
                        for (int j = 0; j < tw; j++) {
                            if (colMean != null) {
                                // Groups of columns on the plain path at once; the rest one by one, below.
                                j = kern.mergeColumnBlock(acc, q, j, tw, rows, count, f, g, colMean, colM2, j0);
                                if (j == tw) {
                                    break;
                                }
                            }
                            double rm;
                            double rq = Moments.onePassM2(acc[j], q[j], rows);
                            if (!Double.isNaN(rq)) {
                                rm = (double) acc[j] / rows;
                            } else {
                                // Far from its shift (or not finite): the column's block in two passes.
                                exact.reset();
                                exactColumn(x, off + j, width, rows, colShift[j0 + j], exact);
                                rm = exact.mean;
                                rq = exact.m2;
                            }
                            if (colMean == null) {
                                ch[(j0 + j) / inner].merge(rows, rm, rq);
                                continue;
                            }
                            mergeColumn(colMean, colM2, j0 + j, count, f, g, rm, rq);
                        }
                    }
                    count = total;
                }
                for (int c = 0; c < channels; c++) {
                    int t = out.index(c, part);
                    if (colMean != null) {
                        out.n[t] = count;
                        out.mean[t] = colMean[c];
                        out.m2[t] = colM2[c];
                    } else {
                        out.n[t] = ch[c].count;
                        out.mean[t] = ch[c].mean;
                        out.m2[t] = ch[c].m2;
                    }
                }
            }
        });
        return out;
    }

    /**
     * Merges a block's moments (mean {@code rm}, M2 {@code rq}, of {@code x - shift}) into column
     * c's after {@code count} values: {@link Moments#merge}'s arithmetic with Chan's factors
     * {@code f = rows / (count + rows)} and {@code g = count * rows / (count + rows)} shared by every
     * column of the block. {@link RowKernels#mergeColumnBlock} does the same on vector lanes.
     */
    static void mergeColumn(double[] mean, double[] m2, int c, double count, double f, double g, double rm,
            double rq) {
        if (count == 0) {
            mean[c] = rm;
            m2[c] = rq;
        } else if (!Double.isFinite(mean[c]) || !Double.isFinite(rm)) {
            mean[c] += rm;
            m2[c] = Double.NaN;
        } else {
            double delta = rm - mean[c];
            mean[c] += delta * f;
            m2[c] += rq + delta * delta * g;
        }
    }

    /** Adds a column's block {@code x[off + r * stride] - k}, r < rows, to {@code m} in double precision. */
    private static void exactColumn(float[] x, int off, int stride, int rows, double k, Moments m) {
        double s = 0;
        for (int r = 0; r < rows; r++) {
            s += x[off + r * stride] - k;
        }
        double mu = s / rows;
        double qq = 0;
        for (int r = 0; r < rows; r++) {
            double d = (x[off + r * stride] - k) - mu;
            qq += d * d;
        }
        m.merge(rows, mu, qq);
    }

    /** @return {@code a} with each entry repeated {@code times} times */
    private static float[] expand(float[] a, int times) {
        if (times == 1) {
            return a;
        }
        float[] out = new float[a.length * times];
        for (int i = 0; i < a.length; i++) {
            Arrays.fill(out, i * times, (i + 1) * times, a[i]);
        }
        return out;
    }

    /**
     * See {@link org.normcl.backend.Backend#channelApply}:
     * {@code y = fma(((x - mean[c]) - meanLo[c]) * inv[c], scale[c], bias[c])}; {@code meanLo},
     * {@code scale} and {@code bias} may be null (zero, one, zero).
     */
    void apply(ChannelPlan p, float[] x, float[] mean, float[] meanLo, float[] inv, float[] scale, float[] bias,
            float[] y) {
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        if (inner >= COLUMN_INNER) {
            parallel.forRange(p.outer() * channels, inner, (from, to) -> {
                RowKernels kern = kernels.fresh();
                for (long seg = from; seg < to; seg++) {
                    int c = (int) (seg % channels);
                    float w = scale != null ? scale[c] : 1f;
                    float b = bias != null ? bias[c] : 0f;
                    float lo = meanLo != null ? meanLo[c] : 0f;
                    kern.normalizeUniform(x, y, (int) (seg * inner), inner, mean[c], lo, inv[c], w, b);
                }
            });
            return;
        }
        int width = channels * inner;
        float[] mu = expand(mean, inner);
        float[] lo = expand(meanLo != null ? meanLo : new float[channels], inner);
        float[] is = expand(inv, inner);
        float[] w = expand(scale != null ? scale : filled(channels, 1f), inner);
        float[] b = expand(bias != null ? bias : filled(channels, 0f), inner);
        parallel.forRange(p.outer(), width, (from, to) -> {
            RowKernels kern = kernels.fresh();
            for (long o = from; o < to; o++) {
                kern.columnApply(x, y, (int) (o * width), width, mu, lo, is, w, b);
            }
        });
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }
}
