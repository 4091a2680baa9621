package org.normcl.testing;

import java.util.SplittableRandom;

/** Seeded test data. */
public final class Data {
    private Data() {
    }

    /** @return n values offset + scale * N(0, 1), from a seed derived from {@code seedText} */
    public static float[] gaussian(String seedText, int n, double offset, double scale) {
        SplittableRandom rnd = new SplittableRandom(seedText.hashCode() * 0x9E3779B97F4A7C15L);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            double u1 = 1.0 - rnd.nextDouble();
            double u2 = rnd.nextDouble();
            a[i] = (float) (offset + scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return a;
    }

    /** @return n values offset + scale * N(0, 1) in double precision (for float64 data, e.g. offsets of 1e9) */
    public static double[] gaussianDoubles(String seedText, int n, double offset, double scale) {
        SplittableRandom rnd = new SplittableRandom(seedText.hashCode() * 0x9E3779B97F4A7C15L);
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            double u1 = 1.0 - rnd.nextDouble();
            double u2 = rnd.nextDouble();
            a[i] = offset + scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
        }
        return a;
    }

    /** @return n values uniform in [lo, hi) */
    public static float[] uniform(String seedText, int n, double lo, double hi) {
        SplittableRandom rnd = new SplittableRandom(seedText.hashCode() * 0xC2B2AE3D27D4EB4FL);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return a;
    }

    /** @return the product of the dimensions */
    public static int size(long... dims) {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return Math.toIntExact(n);
    }
}
