package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;

/**
 * The fused batch-norm forward ({@link ChannelNorm#statsAndApply}: each channel normalized right
 * after its statistics) gives the same bits as the statistics pass followed by the apply pass, for
 * channels of one part and of several, with and without affine terms and running statistics, with
 * an infinity and a NaN in some channels, a large common offset, and any number of threads. The
 * unfused passes are themselves checked against float64 references elsewhere (OperatorAccuracyTest,
 * the ONNX vectors), so equality here carries those bounds over.
 */
class ChannelNormFusionTest {

    static Stream<Arguments> plans() {
        return Stream.of(
                // (outer, channels, inner): one part per channel; several parts (perChannel > PART)
                Arguments.of(4, 16, 64, StatMode.MEAN_VAR, true, true),
                Arguments.of(8, 12, 1000, StatMode.MEAN_VAR, true, false),
                Arguments.of(20, 8, 4096, StatMode.MEAN_VAR, false, false),
                Arguments.of(3, 9, 30_000, StatMode.MEAN_VAR, true, true),
                Arguments.of(5, 16, 333, StatMode.MEAN_VAR_EPS_OUTSIDE, false, false));
    }

    @ParameterizedTest(name = "{0}x{1}x{2} {3} affine {4} running {5}")
    @MethodSource("plans")
    void fusedEqualsStatsThenApply(int outer, int channels, int inner, StatMode mode, boolean affine,
            boolean running) {
        ChannelPlan p = new ChannelPlan(outer, channels, inner, mode, 1e-5f);
        int n = outer * channels * inner;
        SplittableRandom r = new SplittableRandom(n * 31L + channels);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * 2 + 1e4); // a common offset the shift must absorb
        }
        x[3 * inner + 1] = Float.POSITIVE_INFINITY; // channel 3, outer 0
        x[(channels + 5) * inner] = Float.NaN; // channel 5, outer 1
        float[] w = affine ? random(r, channels) : null;
        float[] b = affine ? random(r, channels) : null;
        RunningUpdate update = running ? new RunningUpdate(0.1f, true) : null;
        float[] rmIn = running ? random(r, channels) : null;
        float[] rvIn = running ? random(r, channels) : null;
        Out expected = null;
        for (int threads : new int[] {1, 2, 3}) {
            Parallel parallel = new Parallel(threads);
            try {
                ChannelNorm cn = new ChannelNorm(RowKernels.best(), parallel, new ArrayPool(1L << 26));
                Out unfused = new Out(n, channels, running);
                cn.stats(p, x, unfused.mean, unfused.meanLo, unfused.inv, update, rmIn, rvIn, unfused.rm, unfused.rv);
                cn.apply(p, x, unfused.mean, unfused.meanLo, unfused.inv, w, b, unfused.y);
                Out fused = new Out(n, channels, running);
                cn.statsAndApply(p, x, fused.mean, fused.meanLo, fused.inv, update, rmIn, rvIn, fused.rm, fused.rv,
                        w, b, fused.y);
                String what = outer + "x" + channels + "x" + inner + " threads " + threads;
                fused.assertSameBits(unfused, what);
                if (expected == null) {
                    expected = fused;
                } else {
                    fused.assertSameBits(expected, what + " against 1 thread");
                }
            } finally {
                parallel.shutdown();
            }
        }
    }

    @Test
    void fusesChannelsOfSegmentsThatAreEnoughForTheThreads() {
        assertTrue(ChannelNorm.fuses(new ChannelPlan(8, 128, 4096, StatMode.MEAN_VAR, 1e-5f), 2));
        assertTrue(ChannelNorm.fuses(new ChannelPlan(32, 64, 3136, StatMode.MEAN_VAR, 1e-5f), 2));
        assertFalse(ChannelNorm.fuses(new ChannelPlan(8192, 1024, 1, StatMode.MEAN_VAR, 1e-5f), 2),
                "(N, C) columns take the column path");
        assertTrue(ChannelNorm.fuses(new ChannelPlan(64, 64, 65536, StatMode.MEAN_VAR, 1e-5f), 2),
                "16 MiB channels: read back from L3 or memory, no worse than two passes");
        assertFalse(ChannelNorm.fuses(new ChannelPlan(8, 4, 4096, StatMode.MEAN_VAR, 1e-5f), 2),
                "4 channels are too few to share among 2 threads channel by channel");
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (0.5 + r.nextDouble());
        }
        return a;
    }

    /** Every output of one forward. */
    private static final class Out {
        final float[] y;
        final float[] mean;
        final float[] meanLo;
        final float[] inv;
        final float[] rm;
        final float[] rv;

        Out(int n, int channels, boolean running) {
            y = new float[n];
            mean = new float[channels];
            meanLo = new float[channels];
            inv = new float[channels];
            rm = running ? new float[channels] : null;
            rv = running ? new float[channels] : null;
        }

        void assertSameBits(Out o, String what) {
            assertArrayEquals(o.mean, mean, what + " mean");
            assertArrayEquals(o.meanLo, meanLo, what + " meanLo");
            assertArrayEquals(o.inv, inv, what + " invStd");
            assertArrayEquals(o.rm, rm, what + " running mean");
            assertArrayEquals(o.rv, rv, what + " running var");
            assertArrayEquals(o.y, y, what + " Y");
        }
    }
}
