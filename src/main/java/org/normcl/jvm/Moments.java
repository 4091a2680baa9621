package org.normcl.jvm;

/**
 * Running count, mean and sum of squared deviations (M2) of a stream of values, built from
 * contiguous runs with a two-pass pass per run and Chan's parallel formula between runs. This is
 * numerically stable for any offset (never {@code E[x^2] - E[x]^2}), and each run is read twice
 * while it is still in the L1 cache.
 */
final class Moments {
    /** Values per run: small enough to stay in L1 between the two passes over it. */
    static final int RUN = 1024;

    double count;
    double mean;
    double m2;

    void reset() {
        count = 0;
        mean = 0;
        m2 = 0;
    }

    /** Adds {@code a[off .. off+len)}, splitting it into runs of at most {@link #RUN}. */
    void addRange(float[] a, int off, int len) {
        int end = off + len;
        for (int p = off; p < end; p += RUN) {
            int n = Math.min(RUN, end - p);
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int i = p;
            for (; i + 3 < p + n; i += 4) {
                s0 += a[i];
                s1 += a[i + 1];
                s2 += a[i + 2];
                s3 += a[i + 3];
            }
            for (; i < p + n; i++) {
                s0 += a[i];
            }
            double runMean = ((s0 + s1) + (s2 + s3)) / n;
            double q0 = 0, q1 = 0, q2 = 0, q3 = 0;
            i = p;
            for (; i + 3 < p + n; i += 4) {
                double d0 = a[i] - runMean, d1 = a[i + 1] - runMean, d2 = a[i + 2] - runMean, d3 = a[i + 3] - runMean;
                q0 += d0 * d0;
                q1 += d1 * d1;
                q2 += d2 * d2;
                q3 += d3 * d3;
            }
            for (; i < p + n; i++) {
                double d = a[i] - runMean;
                q0 += d * d;
            }
            merge(n, runMean, (q0 + q1) + (q2 + q3));
        }
    }

    /** Merges another set of moments (Chan et al.). */
    void merge(double nB, double meanB, double m2B) {
        if (nB == 0) {
            return;
        }
        if (count == 0) {
            count = nB;
            mean = meanB;
            m2 = m2B;
            return;
        }
        double n = count + nB;
        if (!Double.isFinite(mean) || !Double.isFinite(meanB)) {
            // An infinity or NaN in the data: the mean is their sum (inf + finite = inf, inf - inf =
            // NaN) and the variance is undefined; the formula below would turn inf into NaN.
            mean += meanB;
            m2 = Double.NaN;
            count = n;
            return;
        }
        double delta = meanB - mean;
        mean += delta * (nB / n);
        m2 += m2B + delta * delta * (count * nB / n);
        count = n;
    }

    /** @return the population variance */
    double variance() {
        return m2 / count;
    }

    /** @return the sum of squares of {@code a[off .. off+len)} */
    static double sumOfSquares(float[] a, int off, int len) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = off;
        int end = off + len;
        for (; i + 3 < end; i += 4) {
            double x0 = a[i], x1 = a[i + 1], x2 = a[i + 2], x3 = a[i + 3];
            s0 += x0 * x0;
            s1 += x1 * x1;
            s2 += x2 * x2;
            s3 += x3 * x3;
        }
        for (; i < end; i++) {
            double x = a[i];
            s0 += x * x;
        }
        return (s0 + s1) + (s2 + s3);
    }
}
