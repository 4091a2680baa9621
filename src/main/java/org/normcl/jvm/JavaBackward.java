package org.normcl.jvm;

import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The Java backend's backward passes and given-statistics forward. Sums are accumulated in double,
 * and every reduction runs in a fixed order (partials per task, merged by index), so results are
 * the same bits whatever the thread scheduling.
 */
final class JavaBackward {
    private JavaBackward() {
    }

    /** dx of each row: invStd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w. */
    static void rowNormBackward(Parallel parallel, RowNormPlan p, float[] dy, float[] x, float[] scale, float[] mean,
            float[] inv, float[] dx) {
        int cols = (int) p.cols();
        int cpg = (int) p.channelsPerGroup();
        int spatial = (int) p.spatial();
        boolean rms = p.mode() == StatMode.RMS;
        parallel.forRange(p.rows(), 3L * cols, (from, to) -> {
            for (int r = (int) from; r < to; r++) {
                int off = r * cols;
                int base = (int) ((r % p.groups()) * cpg);
                float mu = rms ? 0f : mean[r];
                float is = inv[r];
                double sumG = 0;
                double sumGx = 0;
                int i = off;
                for (int c = 0; c < cpg; c++) {
                    if (spatial == 1) {
                        float w = scale == null ? 1f : scale[base + c];
                        double g = (double) dy[i] * w;
                        sumG += g;
                        sumGx += g * ((x[i] - mu) * is);
                        i++;
                        continue;
                    }
                    float w = scale == null ? 1f : scale[base + c];
                    double sg = 0;
                    double sgx = 0;
                    for (int s = 0; s < spatial; s++, i++) {
                        double d = dy[i];
                        sg += d;
                        sgx += d * ((x[i] - mu) * is);
                    }
                    sumG += sg * w;
                    sumGx += sgx * w;
                }
                float meanG = rms ? 0f : (float) (sumG / cols);
                float meanGx = (float) (sumGx / cols);
                i = off;
                for (int c = 0; c < cpg; c++) {
                    float w = scale == null ? 1f : scale[base + c];
                    for (int s = 0; s < spatial; s++, i++) {
                        float xhat = (x[i] - mu) * is;
                        dx[i] = is * (dy[i] * w - meanG - xhat * meanGx);
                    }
                }
            }
        });
    }

    /** dScale[c] = sum dy * xhat, dBias[c] = sum dy over (o, s) of channel c; fixed-order two stages. */
    static void affineGrad(Parallel parallel, AffineGradPlan p, float[] dy, float[] x, float[] mean, float[] inv,
            float[] dScale, float[] dBias) {
        int channels = (int) p.channels();
        int inner = (int) p.inner();
        long outer = p.outer();
        // Stage 1: blocks of outer indices, each summing every channel into its own partial row.
        int blocks = (int) Math.max(1, Math.min(outer, 4L * parallel.threads()));
        double[] partScale = new double[blocks * channels];
        double[] partBias = new double[blocks * channels];
        parallel.forRange(blocks, outer * channels * inner / blocks, (from, to) -> {
            for (int blk = (int) from; blk < to; blk++) {
                long o0 = outer * blk / blocks;
                long o1 = outer * (blk + 1) / blocks;
                int rowBase = blk * channels;
                for (long o = o0; o < o1; o++) {
                    for (int c = 0; c < channels; c++) {
                        int si = (int) p.statIndex(o, c);
                        float mu = p.rms() ? 0f : mean[si];
                        float is = inv[si];
                        int off = (int) ((o * channels + c) * inner);
                        double sd = 0;
                        double sdx = 0;
                        for (int s = 0; s < inner; s++) {
                            double d = dy[off + s];
                            sd += d;
                            sdx += d * (x[off + s] - mu);
                        }
                        partScale[rowBase + c] += sdx * is;
                        partBias[rowBase + c] += sd;
                    }
                }
            }
        });
        // Stage 2: sum the partial rows in block order.
        for (int c = 0; c < channels; c++) {
            double s = 0;
            double b = 0;
            for (int blk = 0; blk < blocks; blk++) {
                s += partScale[blk * channels + c];
                b += partBias[blk * channels + c];
            }
            if (dScale != null) {
                dScale[c] = (float) s;
            }
            if (dBias != null) {
                dBias[c] = (float) b;
            }
        }
    }

    /** Batch-norm dx: training uses the per-channel sums; inference treats the statistics as constants. */
    static void channelBackward(Parallel parallel, ChannelPlan p, float[] dy, float[] x, float[] mean, float[] inv,
            float[] scale, float[] sumDyXhat, float[] sumDy, float[] dx) {
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        double m = p.perChannel();
        parallel.forRange(p.outer() * channels, 2L * inner, (from, to) -> {
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                float w = scale == null ? 1f : scale[c];
                float is = inv[c];
                float mu = mean[c];
                int off = (int) (seg * inner);
                if (sumDy == null) {
                    float k = w * is;
                    for (int i = off; i < off + inner; i++) {
                        dx[i] = dy[i] * k;
                    }
                } else {
                    float meanDy = (float) (sumDy[c] / m);
                    float meanDyXhat = (float) (sumDyXhat[c] / m);
                    float k = w * is;
                    for (int i = off; i < off + inner; i++) {
                        float xhat = (x[i] - mu) * is;
                        dx[i] = k * (dy[i] - meanDy - xhat * meanDyXhat);
                    }
                }
            }
        });
    }

    /** Per-channel mean and M2, from partial moments merged in a fixed order (see channelStats). */
    static void channelMoments(Parallel parallel, ChannelPlan p, float[] x, float[] meanOut, float[] m2Out) {
        Moments[] m = JavaBackend.channelMoments(parallel, p, x);
        for (int c = 0; c < m.length; c++) {
            meanOut[c] = (float) m[c].mean;
            m2Out[c] = (float) m[c].m2;
        }
    }

    /** y = (x - mean[row]) * invStd[row] * w + b, with given statistics. */
    static void rowApply(Parallel parallel, RowNormPlan p, float[] x, float[] mean, float[] inv, float[] scale,
            float[] bias, float[] y) {
        int cols = (int) p.cols();
        int cpg = (int) p.channelsPerGroup();
        int spatial = (int) p.spatial();
        boolean rms = p.mode() == StatMode.RMS;
        parallel.forRange(p.rows(), cols, (from, to) -> {
            for (int r = (int) from; r < to; r++) {
                int base = (int) ((r % p.groups()) * cpg);
                float mu = rms ? 0f : mean[r];
                float is = inv[r];
                int i = r * cols;
                for (int c = 0; c < cpg; c++) {
                    float w = scale == null ? 1f : scale[base + c];
                    float b = bias == null ? 0f : bias[base + c];
                    for (int s = 0; s < spatial; s++, i++) {
                        y[i] = (x[i] - mu) * is * w + b;
                    }
                }
            }
        });
    }
}
