package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.StatMode;

/**
 * Batch norm of float64 channels-first data with a common offset of 1e9 and unit spread: the mean
 * itself rounds at ulp(1e9) ~ 1.2e-7, so the normalized values are right to 1e-12 only if the
 * kernels subtract the shift and the shifted mean separately (the {@code meanLo} part). Against
 * exact statistics (BigDecimal), on runs of 40 values (the row kernels), of 7 (the general loop) and
 * of one ((N, C) data: the column kernels, whose statistics must also be the general loop's bits).
 */
class Float64ChannelTest {
    @Test
    void normalizedValuesAreRightDespiteALargeOffset() {
        for (int[] shape : new int[][] {{3, 2, 40}, {3, 2, 7}, {70, 37, 1}}) {
            int outer = shape[0];
            int channels = shape[1];
            int inner = shape[2];
            int n = outer * channels * inner;
            Random rnd = new Random(inner);
            double[] x = new double[n];
            for (int i = 0; i < n; i++) {
                x[i] = 1e9 + 0.3 + rnd.nextGaussian();
            }
            ChannelPlan p = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
            double[] mean = new double[channels];
            double[] lo = new double[channels];
            double[] inv = new double[channels];
            double[] y = new double[n];
            Parallel parallel = new Parallel(2);
            try {
                DoubleKernels.channelStats(parallel, p, x, mean, lo, inv, null, null, null, null, null);
                DoubleKernels.channelApply(parallel, p, x, mean, lo, inv, null, null, y);
            } finally {
                parallel.shutdown();
            }
            if (inner == 1) {
                // The general loop's order: each channel's values row by row, from its first value.
                for (int c = 0; c < channels; c++) {
                    double k = x[c];
                    double sum = 0;
                    for (int o = 0; o < outer; o++) {
                        sum += x[o * channels + c] - k;
                    }
                    double m = sum / outer;
                    assertEquals(Double.doubleToRawLongBits(k + m), Double.doubleToRawLongBits(mean[c]), "mean " + c);
                    assertEquals(Double.doubleToRawLongBits((k - mean[c]) + m), Double.doubleToRawLongBits(lo[c]),
                            "meanLo " + c);
                }
            }
            MathContext mc = MathContext.DECIMAL128;
            for (int c = 0; c < channels; c++) {
                BigDecimal sum = BigDecimal.ZERO;
                for (int o = 0; o < outer; o++) {
                    for (int k = 0; k < inner; k++) {
                        sum = sum.add(new BigDecimal(x[(o * channels + c) * inner + k]));
                    }
                }
                BigDecimal mu = sum.divide(BigDecimal.valueOf((long) outer * inner), mc);
                BigDecimal ss = BigDecimal.ZERO;
                for (int o = 0; o < outer; o++) {
                    for (int k = 0; k < inner; k++) {
                        BigDecimal d = new BigDecimal(x[(o * channels + c) * inner + k]).subtract(mu);
                        ss = ss.add(d.multiply(d));
                    }
                }
                double var = ss.divide(BigDecimal.valueOf((long) outer * inner), mc).doubleValue();
                double is = 1 / Math.sqrt(var + 1e-5f);
                for (int o = 0; o < outer; o++) {
                    for (int k = 0; k < inner; k++) {
                        int i = (o * channels + c) * inner + k;
                        double ref = new BigDecimal(x[i]).subtract(mu).doubleValue() * is;
                        assertEquals(ref, y[i], 1e-12, "shape " + java.util.Arrays.toString(shape) + " channel " + c + " value " + i);
                    }
                }
            }
        }
    }

    /**
     * The backward of float64 (N, C) data (batch norm, and group norm's per-row statistics) on
     * shapes the threads split: the parameter gradients are the bits of the general loop's order
     * (each channel's terms {@code dy * (x - mu) * inv}, row by row, added from zero), and dx the
     * bits of the per-value formula, on 1 and 3 threads.
     */
    @Test
    void columnGradientsAndDxAreThePerValueFormulasBits() {
        int outer = 1500;
        int channels = 64;
        int n = outer * channels;
        Random rnd = new Random(11);
        double[] x = new double[n];
        double[] dy = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = 3 + 2 * rnd.nextGaussian();
            dy[i] = rnd.nextGaussian();
        }
        for (int groups : new int[] {0, 8}) { // 0: batch norm (one statistic per channel)
            int stats = groups == 0 ? channels : outer * groups;
            AffineGradPlan g = groups == 0 ? new AffineGradPlan(outer, channels, 1, 0, 1, false)
                    : new AffineGradPlan(outer, channels, 1, groups, channels / groups, false);
            double[] mean = new double[stats];
            double[] inv = new double[stats];
            for (int si = 0; si < stats; si++) {
                mean[si] = 3 + 0.1 * rnd.nextGaussian();
                inv[si] = 0.5 + 0.01 * rnd.nextGaussian();
            }
            double[] sums = new double[2 * channels];
            for (int c = 0; c < channels; c++) {
                double s = 0;
                double b = 0;
                for (int o = 0; o < outer; o++) {
                    int si = (int) g.statIndex(o, c);
                    int i = o * channels + c;
                    s += dy[i] * (x[i] - mean[si]) * inv[si];
                    b += dy[i];
                }
                sums[2 * c] = s;
                sums[2 * c + 1] = b;
            }
            for (int threads : new int[] {1, 3}) {
                Parallel parallel = new Parallel(threads);
                try {
                    double[] got = new double[2 * channels];
                    DoubleKernels.affineGrad(parallel, new ArrayPool(1 << 20), g, dy, x, mean, inv, null, null, got);
                    for (int j = 0; j < got.length; j++) {
                        assertEquals(Double.doubleToRawLongBits(sums[j]), Double.doubleToRawLongBits(got[j]),
                                "groups " + groups + ", threads " + threads + ", sum " + j);
                    }
                    if (groups == 0) {
                        double[] scale = new double[channels];
                        for (int c = 0; c < channels; c++) {
                            scale[c] = 1 + 0.1 * c;
                        }
                        double[] dx = new double[n];
                        ChannelPlan p = new ChannelPlan(outer, channels, 1, StatMode.MEAN_VAR, 1e-5f);
                        DoubleKernels.channelBackward(parallel, p, outer, dy, x, mean, inv, scale, sums, dx);
                        for (int i = 0; i < n; i++) {
                            int c = i % channels;
                            double ref = scale[c] * inv[c] * (dy[i] - sums[2 * c + 1] / outer
                                    - (x[i] - mean[c]) * inv[c] * (sums[2 * c] / outer));
                            assertEquals(Double.doubleToRawLongBits(ref), Double.doubleToRawLongBits(dx[i]),
                                    "dx " + i + ", threads " + threads);
                        }
                    }
                } finally {
                    parallel.shutdown();
                }
            }
        }
    }
}
