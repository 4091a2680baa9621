package org.normcl.jvm;

import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The Java backend's backward passes and given-statistics forward, on float32 arrays. Sums are
 * accumulated in double, and every reduction runs in a fixed order (partials per task, merged by
 * index), so results are the same bits whatever the thread scheduling.
 */
final class JavaBackward {
    private JavaBackward() {
    }

    /** dx of each row: invStd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w. */
    static void rowNormBackward(Parallel parallel, RowNormPlan p, float[] dy, float[] x, float[] scale, float[] mean,
            float[] inv, float[] dx) {
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
     * stages; {@code sums} (if not null) receives both unrounded, interleaved.
     */
    static void affineGrad(Parallel parallel, AffineGradPlan p, float[] dy, float[] x, float[] mean, float[] inv,
            float[] dScale, float[] dBias, float[] sums) {
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
            if (sums != null) {
                sums[2 * c] = (float) s;
                sums[2 * c + 1] = (float) b;
            }
        }
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

    /** Batch-norm dx: training uses the per-channel sums; inference treats the statistics as constants. */
    static void channelBackward(Parallel parallel, ChannelPlan p, long count, float[] dy, float[] x, float[] mean,
            float[] inv, float[] scale, float[] sums, float[] dx) {
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        double m = count;
        parallel.forRange(p.outer() * channels, 2L * inner, (from, to) -> {
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                float w = scale == null ? 1f : scale[c];
                float is = inv[c];
                float mu = mean[c];
                int off = (int) (seg * inner);
                float k = w * is;
                if (sums == null) {
                    for (int i = off; i < off + inner; i++) {
                        dx[i] = dy[i] * k;
                    }
                } else {
                    float meanDyXhat = (float) (sums[2 * c] / m);
                    float meanDy = (float) (sums[2 * c + 1] / m);
                    for (int i = off; i < off + inner; i++) {
                        float xhat = (x[i] - mu) * is;
                        dx[i] = k * (dy[i] - meanDy - xhat * meanDyXhat);
                    }
                }
            }
        });
    }

    /** y = (x - mean[row]) * invStd[row] * w + b, with given statistics. */
    static void rowApply(Parallel parallel, RowNormPlan p, float[] x, float[] mean, float[] inv, float[] scale,
            float[] bias, float[] y) {
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
                    FloatKernels.applySegment(x, y, base + i * (int) p.segmentStride(), len, aff, (int) p.spatial(), 0f,
                            rms ? 0f : mean[r], inv[r], w, b);
                }
            }
        });
    }
}
