package org.normcl.jvm;

import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;

/**
 * The Java backend's forward passes on float32 arrays (float16 and bfloat16 data are widened to
 * float32 before they get here). Statistics are accumulated in double precision, multi-threaded
 * over rows and channel parts, merged in a fixed order.
 */
final class FloatKernels {
    private FloatKernels() {
    }

    /** Normalizes every row of the plan (y may be null: statistics only). */
    static void rowNorm(Parallel parallel, RowNormPlan p, float[] x, float[] scale, float[] bias, float[] y,
            float[] meanOut, float[] invOut) {
        float[] w = p.hasScale() ? scale : null;
        float[] b = p.hasBias() ? bias : null;
        int cols = (int) p.cols();
        int segs = (int) p.segments();
        int len = (int) p.segmentLength();
        parallel.forRange(p.rows(), cols, (from, to) -> {
            Moments m = new Moments();
            for (int r = (int) from; r < to; r++) {
                int base = (int) p.rowBase(r);
                int segStride = (int) p.segmentStride();
                float shift = 0f; // the mean is shift + shiftedMean, as in the OpenCL kernels
                float shiftedMean = 0f;
                float inv;
                if (p.mode() == StatMode.RMS) {
                    double ss = 0;
                    for (int i = 0; i < segs; i++) {
                        ss += Moments.sumOfSquares(x, base + i * segStride, len);
                    }
                    inv = invStd(p.mode(), ss / cols, p.epsilon());
                } else {
                    m.reset();
                    for (int i = 0; i < segs; i++) {
                        m.addRange(x, base + i * segStride, len);
                    }
                    shift = Float.isFinite(x[base]) ? x[base] : 0f;
                    shiftedMean = (float) (m.mean - shift);
                    inv = invStd(p.mode(), m.variance(), p.epsilon());
                    if (meanOut != null) {
                        meanOut[r] = (float) m.mean;
                    }
                }
                if (invOut != null) {
                    invOut[r] = inv;
                }
                if (y != null) {
                    int affineBase = (int) ((r % p.groups()) * p.channelsPerGroup());
                    for (int i = 0; i < segs; i++) {
                        applySegment(x, y, base + i * segStride, len, affineBase, (int) p.spatial(), shift,
                                shiftedMean, inv, w, b);
                    }
                }
            }
        });
    }

    /**
     * y = (((x - shift) - mean) * inv) * w + b over one segment; position p uses affine entry
     * affineBase + p / spatial. Subtracting the shift first keeps the digits a float32 mean would
     * lose when the row has a large common offset.
     */
    static void applySegment(float[] x, float[] y, int off, int len, int affineBase, int spatial, float shift,
            float mean, float inv, float[] scale, float[] bias) {
        if (spatial == 1) {
            // one affine entry per element: the layer-norm case, fetched inline.
            for (int q = 0; q < len; q++) {
                int i = off + q;
                float v = ((x[i] - shift) - mean) * inv;
                if (scale != null) {
                    v *= scale[affineBase + q];
                }
                if (bias != null) {
                    v += bias[affineBase + q];
                }
                y[i] = v;
            }
            return;
        }
        for (int q0 = 0; q0 < len; q0 += spatial) {
            int a = affineBase + q0 / spatial;
            float w = scale != null ? scale[a] : 1f;
            float b = bias != null ? bias[a] : 0f;
            int end = off + Math.min(len, q0 + spatial);
            for (int i = off + q0; i < end; i++) {
                y[i] = ((x[i] - shift) - mean) * inv * w + b;
            }
        }
    }

    /** The one place the Java backend turns a variance (or mean square) into an inverse scale. */
    static float invStd(StatMode mode, double varianceOrMeanSquare, float epsilon) {
        double v = (float) varianceOrMeanSquare; // the statistic is a float32 value, as on the device
        if (mode == StatMode.MEAN_VAR_EPS_OUTSIDE) {
            return (float) (1.0 / (Math.sqrt(v) + epsilon));
        }
        return (float) (1.0 / Math.sqrt(v + epsilon));
    }

    /** Batch statistics, optional mean rounding error and running-statistic update. */
    static void channelStats(Parallel parallel, ChannelPlan p, float[] x, float[] mean, float[] meanLo, float[] inv,
            RunningUpdate update, float[] rmIn, float[] rvIn, float[] rmOut, float[] rvOut) {
        Moments[] moments = channelMoments(parallel, p, x);
        for (int c = 0; c < moments.length; c++) {
            Moments m = moments[c];
            float batchMean = (float) m.mean;
            float batchVar = (float) m.variance();
            mean[c] = batchMean;
            if (meanLo != null) {
                meanLo[c] = (float) (m.mean - batchMean);
            }
            inv[c] = invStd(p.mode(), batchVar, p.epsilon());
            if (update != null) {
                float v = update.unbiased() ? (float) (m.m2 / (m.count - 1)) : batchVar;
                float w = update.batchWeight();
                rmOut[c] = rmIn[c] * (1f - w) + batchMean * w;
                rvOut[c] = rvIn[c] * (1f - w) + v * w;
            }
        }
    }

    /**
     * The moments of every channel. Each channel is split into parts so that small channel counts
     * still use every thread; the parts are merged in a fixed order, so the result does not depend
     * on scheduling.
     */
    static Moments[] channelMoments(Parallel parallel, ChannelPlan p, float[] x) {
        int channels = (int) p.channels();
        long perChannel = p.perChannel();
        int parts = (int) Math.max(1, Math.min(perChannel / Parallel.MIN_ELEMENTS_PER_TASK,
                (4L * parallel.threads() + channels - 1) / channels));
        Moments[] partial = new Moments[channels * parts];
        parallel.forRange((long) channels * parts, perChannel / parts, (from, to) -> {
            for (long t = from; t < to; t++) {
                int c = (int) (t / parts);
                int part = (int) (t % parts);
                Moments m = new Moments();
                addChannelRange(p, x, c, perChannel * part / parts, perChannel * (part + 1) / parts, m);
                partial[(int) t] = m;
            }
        });
        Moments[] merged = new Moments[channels];
        for (int c = 0; c < channels; c++) {
            Moments m = new Moments();
            for (int part = 0; part < parts; part++) {
                Moments q = partial[c * parts + part];
                m.merge(q.count, q.mean, q.m2);
            }
            merged[c] = m;
        }
        return merged;
    }

    /** Adds the channel's values with virtual indices {@code [begin, end)} (index = o * inner + s). */
    private static void addChannelRange(ChannelPlan p, float[] x, int c, long begin, long end, Moments m) {
        long inner = p.inner();
        long channels = p.channels();
        long o = begin / inner;
        long s = begin % inner;
        long v = begin;
        while (v < end) {
            int len = (int) Math.min(inner - s, end - v);
            int off = (int) ((o * channels + c) * inner + s);
            m.addRange(x, off, len);
            v += len;
            o++;
            s = 0;
        }
    }

    /** Per-channel mean and M2 (float32). */
    static void channelMoments(Parallel parallel, ChannelPlan p, float[] x, float[] meanOut, float[] meanLoOut,
            float[] m2Out) {
        Moments[] m = channelMoments(parallel, p, x);
        for (int c = 0; c < m.length; c++) {
            meanOut[c] = (float) m[c].mean;
            if (meanLoOut != null) {
                meanLoOut[c] = (float) (m[c].mean - meanOut[c]);
            }
            m2Out[c] = (float) m[c].m2;
        }
    }

    /** Inference-mode statistics from the running ones. */
    static void runningStats(ChannelPlan p, float[] runMean, float[] runVar, float[] mean, float[] inv) {
        for (int c = 0; c < mean.length; c++) {
            mean[c] = runMean[c];
            inv[c] = invStd(p.mode(), runVar[c], p.epsilon());
        }
    }

    /** y = ((x - mean[c]) - meanLo[c]) * invStd[c] * w[c] + b[c]. */
    static void channelApply(Parallel parallel, ChannelPlan p, float[] x, float[] mean, float[] meanLo, float[] inv,
            float[] scale, float[] bias, float[] y) {
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        parallel.forRange(p.outer() * channels, inner, (from, to) -> {
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                float mu = mean[c];
                float lo = meanLo != null ? meanLo[c] : 0f;
                float is = inv[c];
                float w = scale != null ? scale[c] : 1f;
                float b = bias != null ? bias[c] : 0f;
                int off = (int) (seg * inner);
                for (int i = off; i < off + inner; i++) {
                    y[i] = ((x[i] - mu) - lo) * is * w + b;
                }
            }
        });
    }
}
