package org.normcl.reference;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Element-wise closeness checks against a float64 reference.
 *
 * <p>An element passes iff {@code |actual - expected| <= atol + rtol * |expected|} (the ONNX /
 * numpy.isclose rule, asymmetric in favour of the expected value). Special values must match
 * exactly: an expected NaN matches only a NaN, an expected +Inf only +Inf, -Inf only -Inf; a
 * finite expected value never matches a NaN or an infinity.
 */
public final class Tolerance {

    private Tolerance() {
    }

    /** Asserts that a float32 result matches a float64 reference; see the class comment. */
    public static void assertClose(String what, float[] actual, double[] expected, double atol, double rtol) {
        assertClose(what, Reference64.toDouble(actual), expected, atol, rtol);
    }

    /**
     * Asserts that a float64 result matches a float64 reference; see the class comment. Fails with
     * a message naming the number of offending elements, the first and the worst offending index
     * (actual, expected, error, allowed), and the maximum absolute error.
     */
    public static void assertClose(String what, double[] actual, double[] expected, double atol, double rtol) {
        if (actual.length != expected.length) {
            fail(what + ": length " + actual.length + " != expected length " + expected.length);
        }
        int bad = 0;
        int first = -1;
        int worst = -1;
        boolean worstSpecial = false;
        double worstExcess = -1.0;
        for (int i = 0; i < expected.length; i++) {
            double a = actual[i];
            double e = expected[i];
            if (matches(a, e, atol, rtol)) {
                continue;
            }
            bad++;
            if (first < 0) {
                first = i;
            }
            // Mismatched specials (NaN / Inf) rank worst; otherwise rank by error beyond the allowance.
            boolean special = isSpecialMismatch(a, e);
            double excess = special ? 0.0 : Math.abs(a - e) - (atol + rtol * Math.abs(e));
            if (worst < 0 || (special && !worstSpecial) || (special == worstSpecial && excess > worstExcess)) {
                worst = i;
                worstSpecial = special;
                worstExcess = excess;
            }
        }
        if (bad > 0) {
            fail(String.format("%s: %d of %d elements outside atol=%.3g rtol=%.3g; first at %s; worst at %s;"
                            + " max abs error %.6g",
                    what, bad, expected.length, atol, rtol,
                    describe(first, actual, expected, atol, rtol),
                    describe(worst, actual, expected, atol, rtol),
                    maxAbsError(actual, expected)));
        }
    }

    /** {@link #maxAbsError(double[], double[])} for a float32 result. */
    public static double maxAbsError(float[] actual, double[] expected) {
        return maxAbsError(Reference64.toDouble(actual), expected);
    }

    /**
     * The largest {@code |actual - expected|} over the elements whose expected value is finite and
     * whose actual value is finite; {@code +Inf} if any special value (NaN / Inf) is mismatched;
     * 0 for empty arrays.
     */
    public static double maxAbsError(double[] actual, double[] expected) {
        if (actual.length != expected.length) {
            throw new IllegalArgumentException("length " + actual.length + " != " + expected.length);
        }
        double max = 0.0;
        for (int i = 0; i < expected.length; i++) {
            double a = actual[i];
            double e = expected[i];
            if (isSpecialMismatch(a, e)) {
                return Double.POSITIVE_INFINITY;
            }
            if (Double.isFinite(e)) {
                max = Math.max(max, Math.abs(a - e));
            }
        }
        return max;
    }

    /**
     * The largest {@code |actual - expected| / |expected|} over finite pairs with a nonzero
     * expected value (a diagnostic; +Inf on mismatched specials).
     */
    public static double maxRelError(double[] actual, double[] expected) {
        if (actual.length != expected.length) {
            throw new IllegalArgumentException("length " + actual.length + " != " + expected.length);
        }
        double max = 0.0;
        for (int i = 0; i < expected.length; i++) {
            double a = actual[i];
            double e = expected[i];
            if (isSpecialMismatch(a, e)) {
                return Double.POSITIVE_INFINITY;
            }
            if (Double.isFinite(e) && e != 0.0) {
                max = Math.max(max, Math.abs(a - e) / Math.abs(e));
            }
        }
        return max;
    }

    /** The largest finite {@code |expected|} (0 if none), handy for scaling an absolute tolerance. */
    public static double maxAbsFinite(double[] expected) {
        double max = 0.0;
        for (double e : expected) {
            if (Double.isFinite(e)) {
                max = Math.max(max, Math.abs(e));
            }
        }
        return max;
    }

    /** Whether one element passes the rule of the class comment. */
    public static boolean matches(double actual, double expected, double atol, double rtol) {
        if (Double.isNaN(expected) || Double.isInfinite(expected)) {
            // NaN == NaN is false, so compare specials by identity of kind.
            return Double.isNaN(expected) ? Double.isNaN(actual) : actual == expected;
        }
        if (!Double.isFinite(actual)) {
            return false;
        }
        return Math.abs(actual - expected) <= atol + rtol * Math.abs(expected);
    }

    private static boolean isSpecialMismatch(double a, double e) {
        if (Double.isFinite(e)) {
            return !Double.isFinite(a);
        }
        return Double.isNaN(e) ? !Double.isNaN(a) : a != e;
    }

    private static String describe(int i, double[] actual, double[] expected, double atol, double rtol) {
        double a = actual[i];
        double e = expected[i];
        return String.format("[%d] actual=%s expected=%s error=%.6g allowed=%.6g",
                i, a, e, Math.abs(a - e), atol + rtol * Math.abs(e));
    }
}
