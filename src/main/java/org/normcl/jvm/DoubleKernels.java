package org.normcl.jvm;

import java.util.Arrays;

import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;

/**
 * Every primitive for float64 data, in double precision: statistics by two passes (mean, then the
 * sum of squared deviations) on values shifted by the slice's first finite value, parallel over
 * rows and channels, each reduction in a fixed order. The shift matters: with an offset of 1e9 a
 * float64 mean rounds at ulp(1e9) ~ 1e-7, which subtracting shift and shifted mean separately
 * avoids, as the kernels do. The common layouts run on {@link F64Kernels}:
 * contiguous rows (layer, RMS, channels-first group and instance norm) forward and backward, and
 * channels' runs of 16 values or more (channels-first batch norm statistics and apply, parameter
 * gradients), and (N, C) batch norm's statistics and apply, a row of channels at a time. The rest
 * (channels-last layouts, the given-statistics apply, the channel backward) is written for clarity
 * over speed, its elements addressed through the plans one by one.
 */
final class DoubleKernels {
    private DoubleKernels() {
    }

    static double invStd(StatMode mode, double v, float epsilon) {
        return mode == StatMode.MEAN_VAR_EPS_OUTSIDE ? 1.0 / (Math.sqrt(v) + epsilon) : 1.0 / Math.sqrt(v + epsilon);
    }

    static void rowNorm(Parallel parallel, RowNormPlan p, double[] x, double[] scale, double[] bias, double[] y,
            double[] meanOut, double[] invOut) {
        long cols = p.cols();
        boolean rms = p.mode() == StatMode.RMS;
        if (p.isContiguous()) {
            parallel.forRange(p.rows(), cols, (from, to) -> {
                contiguousRows(F64Kernels.best().fresh(), p, x, p.hasScale() ? scale : null,
                        p.hasBias() ? bias : null, y, meanOut, invOut, (int) from, (int) to);
            });
            return;
        }
        parallel.forRange(p.rows(), cols, (from, to) -> {
            for (long r = from; r < to; r++) {
                double k = rms ? 0 : shift(x[(int) p.rowBase(r)]);
                double m = 0;
                if (!rms) {
                    double s = 0;
                    for (long t = 0; t < cols; t++) {
                        s += x[(int) p.offset(r, t)] - k;
                    }
                    m = s / cols;
                }
                double q = 0;
                for (long t = 0; t < cols; t++) {
                    double d = (x[(int) p.offset(r, t)] - k) - m;
                    q += d * d;
                }
                double inv = invStd(p.mode(), q / cols, p.epsilon());
                if (meanOut != null && !rms) {
                    meanOut[(int) r] = k + m;
                }
                if (invOut != null) {
                    invOut[(int) r] = inv;
                }
                if (y != null) {
                    apply(p, x, y, r, k, m, inv, p.hasScale() ? scale : null, p.hasBias() ? bias : null);
                }
            }
        });
    }

    /**
     * Rows {@code [from, to)} of a plan whose rows are contiguous (row r at r * cols: layer and RMS
     * norm, channels-first group and instance norm): the general loop's passes and arithmetic (the
     * mean from the row's shift, the squared deviations from the mean, the normalization) on
     * {@link F64Kernels}: sixteen accumulators per sum, the Vector API where present.
     * Each sum adds in a fixed order ({@link F64Kernels#F64_ACCUMULATORS}), so the bits depend on
     * neither the threads nor the Vector API. A row's second and third passes read it from cache.
     * Layer norm 8192x1024 took 87 ms through the general loop, 6.2 ms with eight scalar accumulators,
     * 3.1-4.4 ms on these kernels; normalizing a row in the loop that reads the next one (as the
     * float32 kernels do) was no faster (docs/performance.md).
     */
    private static void contiguousRows(F64Kernels kern, RowNormPlan p, double[] x, double[] scale, double[] bias,
            double[] y, double[] meanOut, double[] invOut, int from, int to) {
        int cols = (int) p.cols();
        int groups = (int) p.groups();
        int cpg = (int) p.channelsPerGroup();
        int spatial = (int) p.spatial();
        boolean rms = p.mode() == StatMode.RMS;
        // Rows of one finite value (instance norm of (N, C) data): the loop below's results written
        // out, without its kernel calls, which cost more than the value (8192x1024: 121-168 ms).
        // The value is its own shift and mean (its sum of x - k is +0), its variance 0.
        boolean singleValues = cols == 1 && !rms;
        double inv0 = invStd(p.mode(), 0.0, p.epsilon());
        for (int r = from; r < to; r++) {
            int off = r * cols;
            if (singleValues && Double.isFinite(x[off])) {
                double k = x[off];
                if (meanOut != null) {
                    meanOut[r] = k + 0.0;
                }
                if (invOut != null) {
                    invOut[r] = inv0;
                }
                if (y != null) {
                    int a = r % groups;
                    double v = ((x[off] - k) - 0.0) * inv0;
                    if (scale != null) {
                        v *= scale[a];
                    }
                    if (bias != null) {
                        v += bias[a];
                    }
                    y[off] = v;
                }
                continue;
            }
            double k = rms ? 0 : shift(x[off]);
            double m = rms ? 0 : kern.sumShifted(x, off, cols, k) / cols;
            double inv = invStd(p.mode(), kern.sumSquaredDeviations(x, off, cols, k, m) / cols, p.epsilon());
            if (meanOut != null && !rms) {
                meanOut[r] = k + m;
            }
            if (invOut != null) {
                invOut[r] = inv;
            }
            if (y == null) {
                continue;
            }
            int base = (r % groups) * cpg; // the row's first affine entry
            if (spatial == 1) {
                kern.normalize(x, y, off, cols, k, m, inv, scale, bias, base);
                continue;
            }
            // One affine entry per segment of `spatial` values; 1 and -0.0 leave a value as it is.
            for (int j = 0; j < cpg; j++) {
                kern.normalizeUniform(x, y, off + j * spatial, spatial, k, m, inv,
                        scale != null ? scale[base + j] : 1.0, bias != null ? bias[base + j] : -0.0);
            }
        }
    }

    private static double shift(double x0) {
        return Double.isFinite(x0) ? x0 : 0;
    }

    /** y = ((x - k) - m) * inv * w + b over row r. */
    private static void apply(RowNormPlan p, double[] x, double[] y, long r, double k, double m, double inv,
            double[] scale, double[] bias) {
        for (long t = 0; t < p.cols(); t++) {
            int i = (int) p.offset(r, t);
            int a = (int) p.affineIndex(r, t);
            double v = ((x[i] - k) - m) * inv;
            if (scale != null) {
                v *= scale[a];
            }
            if (bias != null) {
                v += bias[a];
            }
            y[i] = v;
        }
    }

    static void rowApply(Parallel parallel, RowNormPlan p, double[] x, double[] mean, double[] meanLo, double[] inv,
            double[] scale, double[] bias, double[] y) {
        boolean rms = p.mode() == StatMode.RMS;
        parallel.forRange(p.rows(), p.cols(), (from, to) -> {
            for (long r = from; r < to; r++) {
                apply(p, x, y, r, rms ? 0 : mean[(int) r], rms || meanLo == null ? 0 : meanLo[(int) r], inv[(int) r],
                        p.hasScale() ? scale : null,
                        p.hasBias() ? bias : null);
            }
        });
    }

    /** Per-channel mean and M2, two-pass on shifted values; {@code lo} (optional) gets what k + m rounds away. */
    static void channelMoments(Parallel parallel, ChannelPlan p, double[] x, double[] mean, double[] m2,
            double[] lo) {
        long per = p.perChannel();
        if (p.inner() >= F64Kernels.F64_ACCUMULATORS && p.outer() > 0 && p.perChannel() <= Integer.MAX_VALUE) {
            channelRunMoments(parallel, p, x, mean, m2, lo);
            return;
        }
        if (p.inner() == 1 && p.outer() > 0 && p.perChannel() * p.channels() <= Integer.MAX_VALUE) {
            channelColumnMoments(parallel, p, x, mean, m2, lo);
            return;
        }
        parallel.forRange(p.channels(), per, (from, to) -> {
            for (long c = from; c < to; c++) {
                double k = shift(x[index(p, c, 0)]);
                double s = 0;
                for (long v = 0; v < per; v++) {
                    s += x[index(p, c, v)] - k;
                }
                double m = s / per;
                double q = 0;
                for (long v = 0; v < per; v++) {
                    double d = (x[index(p, c, v)] - k) - m;
                    q += d * d;
                }
                mean[(int) c] = k + m;
                m2[(int) c] = q;
                if (lo != null) {
                    lo[(int) c] = (k - mean[(int) c]) + m;
                }
            }
        });
    }

    /**
     * {@link #channelMoments} of channels-first data whose runs of {@code inner} values are long
     * enough for the row kernels: the same two passes from the same shift, each run summed by
     * {@link F64Kernels#sumShifted} / {@link F64Kernels#sumSquaredDeviations} and the runs added in
     * outer order (the general loop, a division and a modulo per value, took 18 ms for batch norm
     * 32x64x56x56).
     */
    private static void channelRunMoments(Parallel parallel, ChannelPlan p, double[] x, double[] mean, double[] m2,
            double[] lo) {
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        int outer = (int) p.outer();
        long per = p.perChannel();
        parallel.forRange(channels, per, (from, to) -> {
            F64Kernels kern = F64Kernels.best().fresh();
            for (int c = (int) from; c < to; c++) {
                double k = shift(x[c * inner]);
                double s = 0;
                for (int o = 0; o < outer; o++) {
                    s += kern.sumShifted(x, (o * channels + c) * inner, inner, k);
                }
                double m = s / per;
                double q = 0;
                for (int o = 0; o < outer; o++) {
                    q += kern.sumSquaredDeviations(x, (o * channels + c) * inner, inner, k, m);
                }
                mean[c] = k + m;
                m2[c] = q;
                if (lo != null) {
                    lo[c] = (k - mean[c]) + m;
                }
            }
        });
    }

    /**
     * {@link #channelMoments} of (N, C) data (channels as columns): the general loop's sums, in its
     * order (each channel's values row by row), so the same bits; but the threads split the columns
     * and each walks the rows, adding a row's values to its columns' sums
     * ({@link F64Kernels#columnShiftedSum}), where the general loop walked a column at a time, a row's
     * stride between values (batch norm 8192x1024: 64 ms).
     */
    private static void channelColumnMoments(Parallel parallel, ChannelPlan p, double[] x, double[] mean,
            double[] m2, double[] lo) {
        int channels = (int) p.channels();
        int rows = (int) p.outer();
        long per = p.perChannel();
        parallel.forRange(channels, rows, (from, to) -> {
            F64Kernels kern = F64Kernels.best().fresh();
            int c0 = (int) from;
            int n = (int) (to - from);
            double[] k = new double[n];
            double[] s = new double[n];
            double[] q = new double[n];
            for (int j = 0; j < n; j++) {
                k[j] = shift(x[c0 + j]);
            }
            for (int o = 0; o < rows; o++) {
                kern.columnShiftedSum(x, o * channels + c0, n, k, s);
            }
            double[] m = new double[n];
            for (int j = 0; j < n; j++) {
                m[j] = s[j] / per;
            }
            for (int o = 0; o < rows; o++) {
                kern.columnSquaredDeviations(x, o * channels + c0, n, k, m, q);
            }
            for (int j = 0; j < n; j++) {
                int c = c0 + j;
                mean[c] = k[j] + m[j];
                m2[c] = q[j];
                if (lo != null) {
                    lo[c] = (k[j] - mean[c]) + m[j];
                }
            }
        });
    }

    private static int index(ChannelPlan p, long c, long v) {
        long o = v / p.inner();
        return (int) ((o * p.channels() + c) * p.inner() + v % p.inner());
    }

    static void channelStats(Parallel parallel, ChannelPlan p, double[] x, double[] mean, double[] meanLo,
            double[] inv, RunningUpdate update, double[] rmIn, double[] rvIn, double[] rmOut, double[] rvOut) {
        double[] m2 = new double[mean.length];
        channelMoments(parallel, p, x, mean, m2, meanLo);
        long n = p.perChannel();
        for (int c = 0; c < mean.length; c++) {
            double var = m2[c] / n;
            inv[c] = invStd(p.mode(), var, p.epsilon());
            if (update != null) {
                double v = update.unbiased() ? m2[c] / (n - 1) : var;
                double w = update.batchWeight();
                rmOut[c] = rmIn[c] * (1 - w) + mean[c] * w;
                rvOut[c] = rvIn[c] * (1 - w) + v * w;
            }
        }
    }

    static void runningStats(ChannelPlan p, double[] runMean, double[] runVar, double[] mean, double[] inv) {
        for (int c = 0; c < mean.length; c++) {
            mean[c] = runMean[c];
            inv[c] = invStd(p.mode(), runVar[c], p.epsilon());
        }
    }

    private static double[] filled(int n, double v) {
        double[] a = new double[n];
        Arrays.fill(a, v);
        return a;
    }

    static void channelApply(Parallel parallel, ChannelPlan p, double[] x, double[] mean, double[] meanLo,
            double[] inv, double[] scale, double[] bias, double[] y) {
        long inner = p.inner();
        long channels = p.channels();
        if (inner == 1) {
            // (N, C): a row holds one value of each channel; absent terms as the loop below has them.
            int c = (int) channels;
            double[] lo = meanLo != null ? meanLo : new double[c];
            double[] w = scale != null ? scale : filled(c, 1);
            double[] b = bias != null ? bias : new double[c];
            parallel.forRange(p.outer(), channels, (from, to) -> {
                F64Kernels kern = F64Kernels.best().fresh();
                for (long o = from; o < to; o++) {
                    kern.normalizeColumns(x, y, (int) (o * c), c, 0, mean, lo, inv, w, b);
                }
            });
            return;
        }
        if (inner >= F64Kernels.F64_ACCUMULATORS) {
            // A segment of `inner` values shares its channel's constants: the row kernels' uniform
            // normalization, the same formula ((x - mean) - lo) * inv * w + b.
            int n = (int) inner;
            parallel.forRange(p.outer() * channels, inner, (from, to) -> {
                F64Kernels kern = F64Kernels.best().fresh();
                for (long seg = from; seg < to; seg++) {
                    int c = (int) (seg % channels);
                    kern.normalizeUniform(x, y, (int) (seg * inner), n, mean[c], meanLo != null ? meanLo[c] : 0,
                            inv[c], scale != null ? scale[c] : 1, bias != null ? bias[c] : 0);
                }
            });
            return;
        }
        parallel.forRange(p.outer() * channels, inner, (from, to) -> {
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                double lo = meanLo != null ? meanLo[c] : 0;
                double w = scale != null ? scale[c] : 1;
                double b = bias != null ? bias[c] : 0;
                for (long s = 0; s < inner; s++) {
                    int i = (int) (seg * inner + s);
                    y[i] = ((x[i] - mean[c]) - lo) * inv[c] * w + b;
                }
            }
        });
    }

    static void rowNormBackward(Parallel parallel, RowNormPlan p, double[] dy, double[] x, double[] scale,
            double[] mean, double[] inv, double[] dx) {
        rowNormBackward(parallel, p, dy, x, scale, mean, inv, dx, null, null);
    }

    /**
     * @return whether {@link #rowBackwardWithChannelGrads} applies: channels-first group and instance
     *     norm whose parameter-gradient plan {@link #affineGrad} takes in {@link #channelsFirstGrad}
     *     over the same rows (a statistic per row, segments of at least
     *     {@link F64Kernels#F64_ACCUMULATORS} values)
     */
    static boolean fusesChannelGrads(RowNormPlan p, AffineGradPlan g) {
        return p.isContiguous() && p.spatial() >= F64Kernels.F64_ACCUMULATORS && p.mode() != StatMode.RMS
                && !isRowGrad(g) && g.outerPerStat() == 1 && g.inner() == p.spatial()
                && g.statsPerOuter() == p.groups() && g.channelsPerStat() == p.channelsPerGroup()
                && g.channels() == p.groups() * p.channelsPerGroup() && g.outer() * p.groups() == p.rows();
    }

    /**
     * {@link #rowNormBackward} then {@link #affineGrad} in one read of dY and X, where
     * {@link #fusesChannelGrads}: each row's segments (a channel of one sample) are summed for the
     * parameter gradients right after the row's dx, from cache, with the calls
     * {@link #channelsFirstGrad} makes, and the channels' sums are added over the samples in its
     * order: the same bits as the two calls (group norm backward 32x64x56x56 read dY and X twice).
     */
    static void rowBackwardWithChannelGrads(Parallel parallel, RowNormPlan p, double[] dy, double[] x,
            double[] scale, double[] mean, double[] inv, double[] dx, double[] dScale, double[] dBias) {
        int channels = (int) (p.groups() * p.channelsPerGroup());
        int outer = (int) (p.rows() / p.groups());
        double[] segS = new double[outer * channels]; // (sample, channel), row r's at r * cpg
        double[] segB = new double[outer * channels];
        rowNormBackward(parallel, p, dy, x, scale, mean, inv, dx, segS, segB);
        parallel.forRange(channels, 2L * outer, (c0, c1) -> {
            for (int c = (int) c0; c < c1; c++) {
                double s = 0;
                double b = 0;
                for (int o = 0; o < outer; o++) {
                    b += segB[o * channels + c];
                    s += segS[o * channels + c];
                }
                writeGrad(c, s, b, dScale, dBias, null);
            }
        });
    }

    /** With {@code segS} not null, also each row's segment sums of dy * xhat and dy (see {@link #rowBackwardWithChannelGrads}). */
    private static void rowNormBackward(Parallel parallel, RowNormPlan p, double[] dy, double[] x, double[] scale,
            double[] mean, double[] inv, double[] dx, double[] segS, double[] segB) {
        boolean rms = p.mode() == StatMode.RMS;
        long cols = p.cols();
        if (p.isContiguous()) {
            // Contiguous rows (layer, RMS, channels-first group and instance norm): each row's two
            // sums, then its dx from cache, on F64Kernels (the general loop below
            // took 181 ms for layer norm 8192x1024, 96 ms for group norm 32x64x56x56).
            int n = (int) cols;
            int groups = (int) p.groups();
            int cpg = (int) p.channelsPerGroup();
            int spatial = (int) p.spatial();
            parallel.forRange(p.rows(), 3 * cols, (from, to) -> {
                F64Kernels kern = F64Kernels.best().fresh();
                // One scale per segment of `spatial` values: the kernels take a scale per value, so
                // the row's scales are spread over a row-long array, refilled when the group changes.
                double[] segmentScales = scale != null && spatial > 1 ? new double[n] : null;
                int filled = -1;
                for (int r = (int) from; r < to; r++) {
                    int group = r % groups;
                    double[] w = scale;
                    int aoff = group * cpg;
                    if (segmentScales != null) {
                        if (group != filled) {
                            for (int j = 0; j < cpg; j++) {
                                Arrays.fill(segmentScales, j * spatial, (j + 1) * spatial, scale[aoff + j]);
                            }
                            filled = group;
                        }
                        w = segmentScales;
                        aoff = 0;
                    }
                    double mu = rms ? 0 : mean[r];
                    double sumG = kern.backwardSums(dy, x, w, r * n, aoff, n, mu, inv[r]);
                    double meanGx = kern.backwardSecond / n;
                    kern.backwardDx(dy, x, w, dx, r * n, aoff, n, mu, inv[r], rms ? 0 : sumG / n, meanGx);
                    if (segS != null) {
                        for (int j = 0; j < cpg; j++) {
                            segB[r * cpg + j] = kern.backwardSums(dy, x, null, r * n + j * spatial, 0, spatial, mu,
                                    inv[r]);
                            segS[r * cpg + j] = kern.backwardSecond;
                        }
                    }
                }
            });
            return;
        }
        parallel.forRange(p.rows(), 3 * cols, (from, to) -> {
            for (long r = from; r < to; r++) {
                double mu = rms ? 0 : mean[(int) r];
                double is = inv[(int) r];
                double sg = 0;
                double sgx = 0;
                for (long t = 0; t < cols; t++) {
                    int i = (int) p.offset(r, t);
                    double g = dy[i] * (scale == null ? 1 : scale[(int) p.affineIndex(r, t)]);
                    sg += g;
                    sgx += g * (x[i] - mu) * is;
                }
                double meanG = rms ? 0 : sg / cols;
                double meanGx = sgx / cols;
                for (long t = 0; t < cols; t++) {
                    int i = (int) p.offset(r, t);
                    double g = dy[i] * (scale == null ? 1 : scale[(int) p.affineIndex(r, t)]);
                    dx[i] = is * (g - meanG - (x[i] - mu) * is * meanGx);
                }
            }
        });
    }

    static void affineGrad(Parallel parallel, ArrayPool scratch, AffineGradPlan p, double[] dy, double[] x,
            double[] mean, double[] inv, double[] dScale, double[] dBias, double[] sums) {
        long channels = p.channels();
        long inner = p.inner();
        if (isRowGrad(p)) {
            rowGrads(parallel, scratch, (int) p.outer(), (int) channels, p.rms(), dy, x, null, mean, inv, null, dScale,
                    dBias, sums);
            return;
        }
        if (p.outerPerStat() == 1 && inner >= F64Kernels.F64_ACCUMULATORS) {
            channelsFirstGrad(parallel, p, dy, x, mean, inv, dScale, dBias, sums);
            return;
        }
        if (inner == 1) {
            columnGrad(parallel, p, dy, x, mean, inv, dScale, dBias, sums);
            return;
        }
        parallel.forRange(channels, p.outer() * inner, (from, to) -> {
            for (long c = from; c < to; c++) {
                double s = 0;
                double b = 0;
                for (long o = 0; o < p.outer(); o++) {
                    int si = (int) p.statIndex(o, c);
                    double mu = p.rms() ? 0 : mean[si];
                    for (long k = 0; k < inner; k++) {
                        int i = (int) ((o * channels + c) * inner + k);
                        s += dy[i] * (x[i] - mu) * inv[si];
                        b += dy[i];
                    }
                }
                writeGrad((int) c, s, b, dScale, dBias, sums);
            }
        });
    }

    /**
     * {@link #affineGrad} of plans with one value per (outer, channel) (batch and group norm of (N, C)
     * data, channels-last views): the general loop's sums, each channel's terms added in the same
     * order with the same operations (so the same bits), but the threads split the channels and
     * each walks the rows, a run of its channels at a time, instead of each channel walking a
     * column a row's stride apart (batch norm backward of 8192x1024 float64: 71-106 ms).
     */
    private static void columnGrad(Parallel parallel, AffineGradPlan p, double[] dy, double[] x, double[] mean,
            double[] inv, double[] dScale, double[] dBias, double[] sums) {
        int channels = (int) p.channels();
        int outer = (int) p.outer();
        int[] statOf = new int[channels]; // c / channelsPerStat
        for (int c = 0; c < channels; c++) {
            statOf[c] = (int) (c / p.channelsPerStat());
        }
        parallel.forRange(channels, outer, (c0, c1) -> {
            int from = (int) c0;
            int width = (int) (c1 - c0);
            double[] s = new double[width];
            double[] b = new double[width];
            for (int o = 0; o < outer; o++) {
                long base = o / p.outerPerStat() * p.statsPerOuter();
                int row = o * channels + from;
                for (int j = 0; j < width; j++) {
                    int si = (int) (base + statOf[from + j]);
                    int i = row + j;
                    double mu = p.rms() ? 0 : mean[si];
                    s[j] += dy[i] * (x[i] - mu) * inv[si];
                    b[j] += dy[i];
                }
            }
            for (int j = 0; j < width; j++) {
                writeGrad(from + j, s[j], b[j], dScale, dBias, sums);
            }
        });
    }

    /** Stores channel c's parameter-gradient sums into each of dScale, dBias and the interleaved sums that is not null. */
    private static void writeGrad(int c, double s, double b, double[] dScale, double[] dBias, double[] sums) {
        if (dScale != null) {
            dScale[c] = s;
        }
        if (dBias != null) {
            dBias[c] = b;
        }
        if (sums != null) {
            sums[2 * c] = s;
            sums[2 * c + 1] = b;
        }
    }

    /**
     * {@link #affineGrad} of channels-first data (group and instance norm; statistic per outer index and
     * channel group): the threads split the channels, and each sums its channels' runs of
     * {@code inner} contiguous values ({@link F64Kernels#backwardSums} without a scale: the sum of dy
     * and of {@code (dy * (x - mu)) * is}), outer index by outer index in order, so the bits do not
     * depend on the split. The general loop below took about as long as the whole group norm
     * backward, 96 ms at 32x64x56x56.
     */
    private static void channelsFirstGrad(Parallel parallel, AffineGradPlan p, double[] dy, double[] x,
            double[] mean, double[] inv, double[] dScale, double[] dBias, double[] sums) {
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        int outer = (int) p.outer();
        parallel.forRange(channels, (long) outer * inner, (c0, c1) -> {
            F64Kernels kern = F64Kernels.best().fresh();
            for (int c = (int) c0; c < c1; c++) {
                double s = 0;
                double b = 0;
                for (int o = 0; o < outer; o++) {
                    int si = (int) p.statIndex(o, c);
                    b += kern.backwardSums(dy, x, null, (o * channels + c) * inner, 0, inner,
                            p.rms() ? 0 : mean[si], inv[si]);
                    s += kern.backwardSecond;
                }
                writeGrad(c, s, b, dScale, dBias, sums);
            }
        });
    }

    /** @return whether outer index o of the plan is a contiguous row of its channels with statistic o (layer and RMS norm) */
    static boolean isRowGrad(AffineGradPlan p) {
        return p.inner() == 1 && p.outerPerStat() == 1 && p.statsPerOuter() == 1 && p.channelsPerStat() >= p.channels();
    }

    /** Row blocks of {@link #rowGrads}, at most: a partition fixed by the shape, work for 16 threads. */
    private static final int GRAD_BLOCKS = 16;

    /** Rows per block of {@link #rowGrads}, at least. */
    private static final int GRAD_BLOCK_ROWS = 32;

    /**
     * Layer and RMS norm backward on rows of {@code n} contiguous values: dx (when not null) and the
     * parameter-gradient sums in one pass over the rows. Each row's sums ({@link F64Kernels#backwardSums},
     * dY and X from memory), its dx and its terms of the parameter gradients
     * ({@link F64Kernels#accumulateGrad}, both from cache). The terms add into one partial sum per
     * column for each block of rows, a partition fixed by the shape; the blocks merge in order, so
     * the bits depend on neither the threads nor dx. The general loops took 181 ms for dx and 700 ms
     * for the sums of 8192x1024 and 512x65536 (a column at a time, a row's stride between values).
     */
    static void rowGrads(Parallel parallel, ArrayPool scratch, int rows, int n, boolean rms, double[] dy, double[] x,
            double[] scale, double[] mean, double[] inv, double[] dx, double[] dScale, double[] dBias,
            double[] sums) {
        int blocks = Math.max(1, Math.min(GRAD_BLOCKS, rows / GRAD_BLOCK_ROWS));
        // Per block, the scale terms' sums then the bias terms' sums (pooled: 16 MiB at 512x65536,
        // whose page faults on a fresh array would cost more than the sums).
        double[] part = scratch.doubles(blocks * 2 * n);
        parallel.forRange(blocks, (dx == null ? 2L : 3L) * n * Math.max(1, rows / blocks), (b0, b1) -> {
            F64Kernels kern = F64Kernels.best().fresh();
            for (int blk = (int) b0; blk < b1; blk++) {
                int base = blk * 2 * n;
                java.util.Arrays.fill(part, base, base + 2 * n, 0.0);
                for (int r = (int) ((long) rows * blk / blocks); r < (long) rows * (blk + 1) / blocks; r++) {
                    int off = r * n;
                    double mu = rms ? 0 : mean[r];
                    if (dx != null) {
                        double sumG = kern.backwardSums(dy, x, scale, off, 0, n, mu, inv[r]);
                        double meanGx = kern.backwardSecond / n;
                        kern.backwardDx(dy, x, scale, dx, off, 0, n, mu, inv[r], rms ? 0 : sumG / n, meanGx);
                    }
                    kern.accumulateGrad(dy, x, off, n, mu, inv[r], part, base, part, base + n);
                }
            }
        });
        parallel.forRange(n, 2L * blocks, (c0, c1) -> {
            for (int c = (int) c0; c < c1; c++) {
                double s = 0;
                double b = 0;
                for (int blk = 0; blk < blocks; blk++) {
                    s += part[blk * 2 * n + c];
                    b += part[blk * 2 * n + n + c];
                }
                writeGrad(c, s, b, dScale, dBias, sums);
            }
        });
        scratch.give(part);
    }

    /**
     * Batch-norm dx ({@code sums} null: inference), the per-channel factors worked out once per
     * channel rather than per value (the same operations on the same values, so the same bits as
     * the per-value formula). One value per (outer, channel), (N, C) data, goes row by row.
     */
    static void channelBackward(Parallel parallel, ChannelPlan p, long count, double[] dy, double[] x, double[] mean,
            double[] inv, double[] scale, double[] sums, double[] dx) {
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        double m = count;
        double[] k = new double[channels];
        double[] meanDy = new double[channels];
        double[] meanDyXhat = new double[channels];
        for (int c = 0; c < channels; c++) {
            k[c] = (scale == null ? 1 : scale[c]) * inv[c];
            if (sums != null) {
                meanDy[c] = sums[2 * c + 1] / m;
                meanDyXhat[c] = sums[2 * c] / m;
            }
        }
        if (inner == 1) {
            parallel.forRange(p.outer(), channels, (from, to) -> {
                for (int off = (int) from * channels; off < to * channels; off += channels) {
                    for (int c = 0; c < channels; c++) {
                        int i = off + c;
                        dx[i] = sums == null ? dy[i] * k[c]
                                : k[c] * (dy[i] - meanDy[c] - (x[i] - mean[c]) * inv[c] * meanDyXhat[c]);
                    }
                }
            });
            return;
        }
        parallel.forRange(p.outer() * channels, inner, (from, to) -> {
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                int off = (int) (seg * inner);
                double kc = k[c];
                if (sums == null) {
                    for (int i = off; i < off + inner; i++) {
                        dx[i] = dy[i] * kc;
                    }
                    continue;
                }
                double md = meanDy[c];
                double mdx = meanDyXhat[c];
                double mu = mean[c];
                double is = inv[c];
                for (int i = off; i < off + inner; i++) {
                    dx[i] = kc * (dy[i] - md - (x[i] - mu) * is * mdx);
                }
            }
        });
    }
}
