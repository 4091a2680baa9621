package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The one-pass run statistics ({@link Moments#addOnePass}): sums of {@code x - k} and of their
 * squares, {@code M2 = sum d^2 - n mean_d^2}, with a two-pass redo when the run's mean is far from
 * its shift. Against a float64 two-pass oracle, on data built to defeat the shift (a first vector
 * unlike the rest, a large offset with a tiny spread, a step, sorted values): the result stays
 * within the two-pass reduction's bound times the guard's factor. (A shift of 0 or of one value
 * would fail here: the offset-1e4 run would lose its variance to the rounding of its mean.)
 */
class OnePassMomentsTest {
    private static final double U = 0x1p-24;

    static Stream<Arguments> runs() {
        return Stream.of(
                Arguments.of("gaussian offset 3", gaussian(1024, 3, 1, 1)),
                Arguments.of("offset 1e4 spread 1e-2", gaussian(1024, 1e4, 1e-2, 2)),
                Arguments.of("first vector at 1e3, rest at 0", firstVectorApart(1024, 1e3)),
                Arguments.of("first vector at -50, rest at 0 (short run)", firstVectorApart(200, -50)),
                Arguments.of("step 0 then 100", step(1000, 100)),
                Arguments.of("sorted ramp", ramp(1024)),
                Arguments.of("constant 7.25", constant(1024, 7.25f)),
                Arguments.of("long row of runs with drift", drift(70_000)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("runs")
    void guardedOnePassMatchesTheFloat64Oracle(String name, float[] a) {
        double[] ref = oracle(a);
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            Moments m = new Moments();
            m.addOnePass(k.fresh(), a, 0, a.length);
            // Mean: a few dozen roundings of the values' magnitude, per run, merged in double.
            double scale = ref[2] + Math.sqrt(ref[1] / a.length);
            assertEquals(ref[0], m.mean, 64 * U * scale, name + " " + k.name() + " mean");
            // M2: the two-pass bound times the guard's 3.2 (Moments.ONE_PASS_LIMIT), rounded up:
            // 4 x (lanes' sequential adds + tree depth) roundings, relative to M2.
            double bound = 4 * (RowKernels.RUN / 16 + 16) * U * ref[1] + 1e-30;
            assertEquals(ref[1], m.m2, bound, name + " " + k.name() + " M2");
        }
    }

    /** @return {mean, M2, max |x|} in double, two passes */
    private static double[] oracle(float[] a) {
        double s = 0;
        double max = 0;
        for (float v : a) {
            s += v;
            max = Math.max(max, Math.abs(v));
        }
        double mean = s / a.length;
        double q = 0;
        for (float v : a) {
            q += (v - mean) * (v - mean);
        }
        return new double[] {mean, q, max};
    }

    private static float[] gaussian(int n, double offset, double sigma, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (offset + sigma * r.nextGaussian());
        }
        return a;
    }

    private static float[] firstVectorApart(int n, double apart) {
        float[] a = gaussian(n, 0, 1e-1, 3);
        for (int i = 0; i < Moments.SHIFT_VALUES; i++) {
            a[i] += (float) apart;
        }
        return a;
    }

    private static float[] step(int n, float high) {
        float[] a = gaussian(n, 0, 1, 4);
        for (int i = n / 8; i < n; i++) {
            a[i] += high;
        }
        return a;
    }

    private static float[] ramp(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 1000f + i * 0.01f;
        }
        return a;
    }

    private static float[] constant(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    private static float[] drift(int n) {
        SplittableRandom r = new SplittableRandom(5);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (i * 1e-3 + r.nextGaussian());
        }
        return a;
    }
}
