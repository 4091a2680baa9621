package org.normcl.testing;

import org.normcl.reference.Reference64Backward;

/**
 * Error bounds for float32 gradients against the float64 reference, derived like
 * {@link Tolerances}. With {@code dx = inv * (g - A - xhat * B)}, {@code A = mean(g)},
 * {@code B = mean(g * xhat)}, {@code g = dy * w}, per slice, C = 32 and m = |mean| / sigma:
 * <ul>
 *   <li>g and the final product round a few times: {@code C u |g_i|};
 *   <li>A is a sum of float32 terms: {@code C u mean|g|};
 *   <li>B sums products with xhat, each xhat off by {@code u (2m + C (1 + |xhat|))} (see
 *       Tolerances): {@code u (2m mean|g| + C (mean|g| + mean|g xhat|))} plus {@code C u mean|g xhat|};
 *   <li>the factor xhat_i carries the same xhat error times |B|, and inv a relative C u.
 * </ul>
 * Summed: {@code inv u (C|g_i| + a (C + |xhat_i| (2m + C)) + b (2C + 2m + 2C |xhat_i|))} with
 * {@code a = mean|g|}, {@code b = mean|g xhat|}. The parameter gradients are sums over K
 * elements: {@code dScale} within {@code u sum(|dy| (2m + C (1 + |xhat|)) + C |dy xhat|)},
 * {@code dBias} within {@code C u sum|dy|}.
 */
public final class GradBounds {
    private static final double C = 32;

    private GradBounds() {
    }

    /** Per-element bounds for dx, and per-entry bounds for dScale and dBias. */
    public record Bounds(double[] dx, double[] dScale, double[] dBias) {
    }

    /**
     * @param op the reference layout
     * @param x the input
     * @param dy the output gradient
     * @param w the scale, or null
     */
    public static Bounds of(Reference64Backward.Sliced op, float[] x, float[] dy, float[] w) {
        return of(op, Reference64Backward.widen(x), Reference64Backward.widen(dy), Reference64Backward.widen(w),
                Tolerances.U);
    }

    /** {@link #of(Reference64Backward.Sliced, float[], float[], float[])} for any data, with unit roundoff U. */
    public static Bounds of(Reference64Backward.Sliced op, double[] xd, double[] dy, double[] w, double U) {
        int n = xd.length;
        double[][] st = Reference64Backward.stats(op, xd);
        double[] mean = st[0];
        double[] inv = st[1];
        double[] absG = new double[op.slices()];
        double[] absGx = new double[op.slices()];
        double[] count = new double[op.slices()];
        double[] dScale = new double[op.affines()];
        double[] dBias = new double[op.affines()];
        for (int i = 0; i < n; i++) {
            int s = op.slice()[i];
            int a = op.affine()[i];
            double xhat = (xd[i] - mean[s]) * inv[s];
            double m = Math.abs(mean[s]) * inv[s];
            double g = Math.abs(dy[i] * (w == null ? 1 : w[a]));
            absG[s] += g;
            absGx[s] += g * Math.abs(xhat);
            count[s]++;
            dScale[a] += U * (Math.abs(dy[i]) * (2 * m + C * (1 + Math.abs(xhat))) + C * Math.abs(dy[i] * xhat));
            dBias[a] += C * U * Math.abs(dy[i]);
        }
        double[] dx = new double[n];
        for (int i = 0; i < n; i++) {
            int s = op.slice()[i];
            int a = op.affine()[i];
            double xhat = Math.abs((xd[i] - mean[s]) * inv[s]);
            double m = Math.abs(mean[s]) * inv[s];
            double g = Math.abs(dy[i] * (w == null ? 1 : w[a]));
            double am = absG[s] / count[s];
            double bm = absGx[s] / count[s];
            dx[i] = inv[s] * U * (C * g + am * (C + xhat * (2 * m + C)) + bm * (2 * C + 2 * m + 2 * C * xhat))
                    + Double.MIN_NORMAL;
        }
        for (int a = 0; a < dScale.length; a++) {
            dScale[a] += Double.MIN_NORMAL;
            dBias[a] += Double.MIN_NORMAL;
        }
        return new Bounds(dx, dScale, dBias);
    }
}
