package org.normcl.testing;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Error bounds for float32 normalization results against a float64 reference, derived from how
 * the result is computed rather than fitted to observed errors.
 *
 * <p>With u = 2^-24 (float32 unit roundoff), for y = ((x - mean) * invStd) * w + b:
 * <ul>
 *   <li>The mean is held in float32: rounding it costs up to u|mean| absolute, which the
 *       normalization divides by sigma; allowed: {@code 2u |mean| / sigma}.
 *   <li>Accumulating the statistics (runs of up to 1024 values in 8 lanes, merged by Chan's formula)
 *       and the three roundings of the apply step: a few dozen u, relative to the normalized value
 *       and to one standard deviation; allowed: {@code 32u (1 + |xhat|)}.
 *   <li>Scaling by w multiplies both; adding b and storing y round once more: {@code 2u (|b| + |y|)}.
 * </ul>
 * So {@code |y - y_ref| <= |w| u (2 |mean|/sigma + 32 (1 + |xhat|)) + 2u (|b| + |y_ref|)}. A naive
 * {@code E[x^2] - E[x]^2} variance breaks this by orders of magnitude on data with a large offset
 * (its variance error is about u mean^2 / sigma^2), so the bound tells stable from unstable code.
 */
public final class Tolerances {
    /**
     * With {@code -Dnormcl.test.errors=FILE}, every checked quantity's largest absolute error and
     * largest error/bound ratio are appended to FILE (tab-separated), for closing notes and for
     * seeing how much room the bounds leave.
     */
    private static final String ERROR_LOG = System.getProperty("normcl.test.errors");

    /** float32 unit roundoff. */
    public static final double U = Math.ulp(1.0f) / 2;

    private Tolerances() {
    }

    /**
     * Bound for one normalized element.
     *
     * @param xhat the reference normalized value (x - mean) * invStd
     * @param meanOverSigma |mean| / sigma of the slice (0 for RMS)
     * @param w the scale (1 without)
     * @param b the bias (0 without)
     * @param yRef the reference output
     */
    public static double element(double xhat, double meanOverSigma, double w, double b, double yRef) {
        return element(U, xhat, meanOverSigma, w, b, yRef);
    }

    /** {@link #element(double, double, double, double, double)} for computation with unit roundoff {@code u}. */
    public static double element(double u, double xhat, double meanOverSigma, double w, double b, double yRef) {
        return Math.abs(w) * u * (2 * meanOverSigma + 32 * (1 + Math.abs(xhat))) + 2 * u * (Math.abs(b) + Math.abs(yRef))
                + Double.MIN_NORMAL;
    }

    /** Bound for a saved mean: summation error relative to the data's magnitude |mean| + sigma. */
    public static double mean(double mean, double sigma) {
        return mean(U, mean, sigma);
    }

    /** {@link #mean(double, double)} with unit roundoff {@code u}. */
    public static double mean(double u, double mean, double sigma) {
        return 32 * u * (Math.abs(mean) + sigma) + Double.MIN_NORMAL;
    }

    /** Bound for a saved inverse standard deviation (relative: variance and square root roundings). */
    public static double invStd(double invStd) {
        return invStd(U, invStd);
    }

    /** {@link #invStd(double)} with unit roundoff {@code u}. */
    public static double invStd(double u, double invStd) {
        return 64 * u * Math.abs(invStd) + Double.MIN_NORMAL;
    }

    /**
     * Bound for an updated running mean (docs/tolerances.md, running statistics): the batch mean's
     * bound ({@link #mean(double, double)}), weighted by at most 1, plus two roundings of the update.
     *
     * @param batchMean the reference batch mean
     * @param sigma the batch's standard deviation
     * @param before the running mean given
     * @param after the reference updated running mean
     */
    public static double runningMean(double batchMean, double sigma, double before, double after) {
        return mean(batchMean, sigma) + 4 * U * (Math.abs(before) + Math.abs(after));
    }

    /**
     * Bound for an updated running variance: the batch variance's 128u (twice {@link #invStd}'s
     * relative 64u), weighted by at most 1, and the roundings of the update, all within 64u of the
     * terms.
     *
     * @param batchVar the reference batch variance (biased: 1 / invStd^2)
     * @param before the running variance given
     * @param after the reference updated running variance
     */
    public static double runningVar(double batchVar, double before, double after) {
        return 64 * U * (Math.abs(before) + Math.abs(after) + batchVar);
    }

    /**
     * The unit roundoff of computing on data of a type: float32 for float32, float16 and bfloat16
     * (all computed in float32), float64 for float64.
     */
    public static double computeU(org.normcl.DType t) {
        return t == org.normcl.DType.FLOAT64 ? Math.ulp(1.0) / 2 : U;
    }

    /**
     * The error of storing a result in a type, per unit of |value|: its unit roundoff (2^-24 float32,
     * 2^-11 float16, 2^-8 bfloat16, 2^-53 float64).
     */
    public static double storeU(org.normcl.DType t) {
        switch (t) {
            case FLOAT16:
                return 0x1p-11;
            case BFLOAT16:
                return 0x1p-8;
            case FLOAT64:
                return 0x1p-53;
            default:
                return U;
        }
    }

    /**
     * The absolute error floor of storing in a type: half the smallest subnormal step of float16
     * (2^-25); the other types' subnormal steps are far below any bound used here.
     */
    public static double storeFloor(org.normcl.DType t) {
        return t == org.normcl.DType.FLOAT16 ? 0x1p-25 : 0;
    }

    /** Asserts elementwise, for actual values held as doubles (any stored type widened). */
    public static void assertWithin(String what, double[] actual, double[] expected, double[] bound) {
        assertWithinImpl(what, actual, expected, bound);
    }

    private static final ThreadLocal<String> BACKEND = ThreadLocal.withInitial(() -> "");

    /** Names the backend the following checks on this thread run on (for the error log). */
    public static void onBackend(String name) {
        BACKEND.set(name);
    }

    private static synchronized void record(String what, double maxErr, double worstRatio) {
        if (ERROR_LOG == null) {
            return;
        }
        String backend = BACKEND.get();
        try {
            java.nio.file.Files.writeString(java.nio.file.Path.of(ERROR_LOG),
                    backend + "\t" + what + "\t" + maxErr + "\t" + worstRatio + "\n",
                    java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /**
     * Asserts elementwise {@code |actual - expected| <= bound[i]}, NaN matching only NaN and
     * infinities matching the same infinity.
     */
    public static void assertWithin(String what, float[] actual, double[] expected, double[] bound) {
        double[] d = new double[actual.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = actual[i];
        }
        assertWithinImpl(what, d, expected, bound);
    }

    private static void assertWithinImpl(String what, double[] actual, double[] expected, double[] bound) {
        if (actual.length != expected.length) {
            fail(what + ": length " + actual.length + " != expected " + expected.length);
        }
        int bad = 0;
        int worst = -1;
        double worstRatio = 0;
        double maxErr = 0;
        for (int i = 0; i < actual.length; i++) {
            double a = actual[i];
            double e = expected[i];
            double ratio;
            if (Double.isNaN(e) || Double.isNaN(a) || Double.isInfinite(e) || Double.isInfinite(a)) {
                ratio = (Double.isNaN(e) && Double.isNaN(a)) || a == e ? 0 : Double.POSITIVE_INFINITY;
            } else {
                double err = Math.abs(a - e);
                maxErr = Math.max(maxErr, err);
                ratio = err / bound[i];
            }
            if (ratio > 1) {
                bad++;
            }
            if (ratio > worstRatio) {
                worstRatio = ratio;
                worst = i;
            }
        }
        record(what, maxErr, worstRatio);
        if (bad > 0) {
            fail(String.format("%s: %d of %d elements outside the bound; worst at [%d]: actual %s, expected %s,"
                    + " bound %.3g (%.1fx); max abs error %.3g", what, bad, actual.length, worst, actual[worst],
                    expected[worst], bound[worst], worstRatio, maxErr));
        }
    }
}
