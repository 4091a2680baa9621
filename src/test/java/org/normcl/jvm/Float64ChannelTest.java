package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.Random;

import org.junit.jupiter.api.Test;
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
}
