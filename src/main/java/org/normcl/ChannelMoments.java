package org.normcl;

import java.util.Arrays;
import java.util.List;

/**
 * Per-slice moments — count, mean and M2 (the sum of squared deviations from the mean) — of a
 * batch-norm channel or a group-norm (sample, group), in a form that merges exactly across
 * shards of a batch: devices in one process, or hosts.
 *
 * <p>{@link #merge(List)} applies Chan et al.'s parallel formula in double precision, in list
 * order, so every participant that merges the same list in the same order gets the same bits:
 * <pre>
 *   n = nA + nB,  delta = meanB - meanA
 *   mean = meanA + delta * nB / n
 *   M2   = M2A + M2B + delta^2 * nA * nB / n
 * </pre>
 * To use an all-reduce you already run (MPI, Spark, a parameter server), all-gather each rank's
 * {@link #count()}, {@link #mean()} and {@link #m2()} arrays, rebuild one {@code ChannelMoments}
 * per rank with {@link #of(long, double[], double[])}, and merge them in rank order. A plain
 * SUM all-reduce also works if each rank sends {@code (n, n*mean, M2 + n*mean^2)}, but that loses
 * precision when the mean is large against the spread; prefer the gather.
 */
public final class ChannelMoments {
    private final long count;
    private final double[] mean;
    private final double[] m2;

    private ChannelMoments(long count, double[] mean, double[] m2) {
        this.count = count;
        this.mean = mean;
        this.m2 = m2;
    }

    /**
     * Moments from their parts, for example one rank's {@link #count()}, {@link #mean()} and
     * {@link #m2()} gathered from another process.
     *
     * <p>A NaN or infinite mean or M2 is accepted: it is what {@code batchNormMoments} returns for
     * a shard whose data holds NaN or an infinity, and normalizing with it gives NaN, as a single
     * engine does on that data. A negative M2, which no data gives, is refused.
     *
     * @param count values per slice (the same for every slice), &ge; 0
     * @param mean the mean of each slice (ignored when count is 0)
     * @param m2 the sum of squared deviations of each slice: not negative when count &gt; 0 (ignored
     *     when count is 0)
     * @return the moments (the arrays are copied)
     * @throws IllegalArgumentException if an argument is null, the lengths differ, count is
     *     negative, or an M2 of a non-empty slice is negative (the message names the index and the
     *     value)
     */
    public static ChannelMoments of(long count, double[] mean, double[] m2) {
        Validation.notNull(mean, "mean", "one mean per slice");
        Validation.notNull(m2, "m2", "one M2 per slice");
        if (count < 0) {
            throw new IllegalArgumentException("count = " + count + ": expected >= 0");
        }
        if (mean.length != m2.length) {
            throw new IllegalArgumentException("mean has " + mean.length + " slices but m2 has " + m2.length
                    + ": expected the same length");
        }
        for (int i = 0; count > 0 && i < m2.length; i++) {
            if (m2[i] < 0) {
                throw new IllegalArgumentException("m2[" + i + "] = " + m2[i] + ": expected a value >= 0 (a sum of"
                        + " squared deviations; count = " + count + ")");
            }
        }
        return new ChannelMoments(count, mean.clone(), m2.clone());
    }

    /**
     * Merges shards' moments in list order.
     *
     * @param parts the shards' moments, all with the same number of slices
     * @return the moments of the union
     * @throws IllegalArgumentException if parts is null or empty, holds null, or the slice counts
     *     differ
     */
    public static ChannelMoments merge(List<ChannelMoments> parts) {
        Validation.notNull(parts, "parts", "a list of at least one ChannelMoments");
        if (parts.isEmpty()) {
            throw new IllegalArgumentException("parts must hold at least one ChannelMoments");
        }
        for (int i = 0; i < parts.size(); i++) {
            if (parts.get(i) == null) {
                throw new IllegalArgumentException("parts[" + i + "] is null: expected a ChannelMoments");
            }
        }
        int slices = parts.get(0).slices();
        long n = 0;
        double[] mean = new double[slices];
        double[] m2 = new double[slices];
        for (ChannelMoments p : parts) {
            if (p.slices() != slices) {
                throw new IllegalArgumentException("parts have " + slices + " and " + p.slices()
                        + " slices: expected the same number (same channels or groups)");
            }
            if (p.count == 0) {
                continue;
            }
            long total = n + p.count;
            for (int c = 0; c < slices; c++) {
                if (n == 0) {
                    mean[c] = p.mean[c];
                    m2[c] = p.m2[c];
                    continue;
                }
                if (!Double.isFinite(mean[c]) || !Double.isFinite(p.mean[c])) {
                    // An infinity or NaN in the data, as a single pass merges it (jvm.Moments,
                    // common.cl): the mean is the sum (inf + finite = inf, inf - inf = NaN), the
                    // variance undefined. The formula below would turn inf + (finite - inf) * w into NaN.
                    mean[c] += p.mean[c];
                    m2[c] = Double.NaN;
                    continue;
                }
                double delta = p.mean[c] - mean[c];
                mean[c] += delta * ((double) p.count / total);
                m2[c] += p.m2[c] + delta * delta * ((double) n * p.count / total);
            }
            n = total;
        }
        return new ChannelMoments(n, mean, m2);
    }

    /** @return values per slice */
    public long count() {
        return count;
    }

    /** @return the number of slices (channels, or samples x groups) */
    public int slices() {
        return mean.length;
    }

    /** @return a copy of the means */
    public double[] mean() {
        return mean.clone();
    }

    /** @return a copy of the sums of squared deviations */
    public double[] m2() {
        return m2.clone();
    }

    /**
     * @param unbiased divide by count - 1 instead of count
     * @return the variance of each slice
     */
    public double[] variance(boolean unbiased) {
        double d = unbiased ? count - 1 : count;
        double[] v = new double[m2.length];
        for (int c = 0; c < v.length; c++) {
            v[c] = m2[c] / d;
        }
        return v;
    }

    /** What rounding the means to the statistics type loses (see Backend.channelStats). */
    double[] meanLo(DType statType) {
        double[] lo = new double[mean.length];
        if (statType == DType.FLOAT32) {
            for (int c = 0; c < lo.length; c++) {
                lo[c] = mean[c] - (float) mean[c];
            }
        }
        return lo;
    }

    /** {@code 1 / sqrt(var + epsilon)} from the population variance. */
    double[] invStd(float epsilon) {
        double[] f = new double[mean.length];
        for (int c = 0; c < f.length; c++) {
            f[c] = 1.0 / Math.sqrt(m2[c] / count + epsilon);
        }
        return f;
    }

    @Override
    public String toString() {
        return "ChannelMoments{count=" + count + ", mean=" + Arrays.toString(mean) + ", m2=" + Arrays.toString(m2)
                + "}";
    }
}
