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

    /**
     * Merges the run {@code a[p .. p+n) - k} from its float32 mean and sum of squared deviations,
     * or, when either is not finite, from a double-precision redo of the run.
     */
    void mergeRun(float[] a, int p, int n, float k, float runMean, float q) {
        if (Float.isFinite(runMean) && Float.isFinite(q)) {
            merge(n, runMean, q);
        } else {
            addRunExact(a, p, n, k);
        }
    }

    /** Adds {@code a[p .. p+n) - k} with a two-pass reduction in double precision. */
    void addRunExact(float[] a, int p, int n, double k) {
        addRunExact(a, p, n, k, 0);
    }

    /**
     * Adds {@code a[p .. p+n) - k} with a two-pass reduction in double precision, its mean merged as
     * {@code origin + mean}: {@code origin = 0} for moments of shifted values, {@code origin = k} for
     * moments of the values themselves.
     */
    private void addRunExact(float[] a, int p, int n, double k, double origin) {
        double s = 0;
        for (int i = p; i < p + n; i++) {
            s += a[i] - k;
        }
        double runMean = s / n;
        double q = 0;
        for (int i = p; i < p + n; i++) {
            double d = (a[i] - k) - runMean;
            q += d * d;
        }
        merge(n, origin + runMean, q);
    }

    // ------------------------------------------------------------------ one pass per run

    /**
     * Largest {@code n (mean - k)^2 / M2} of a run whose one-pass statistics are kept (see
     * {@link #mergeRunOnePass}). Below it, {@code M2 = sum d^2 - n mean_d^2} cancels at most
     * {@code 1 + LIMIT} of its terms, so its float32 rounding error stays within about
     * {@code (1 + LIMIT + 2 sqrt(LIMIT (1 + LIMIT)))} = 3.2 times a two-pass reduction's.
     */
    static final double ONE_PASS_LIMIT = 0.5;

    /** Values averaged for a run's shift: one 512-bit vector of floats. */
    static final int SHIFT_VALUES = 16;

    /**
     * The shift of the run {@code a[p .. p+n)}: the float32 mean of its first
     * {@code min(n, 16)} values (added pairwise in a fixed order), or 0 when that is not finite.
     * Close to the run's mean (for independent values, {@code n (mean - k)^2 / M2} is about
     * {@code chi^2(1) / 16}), so the one-pass statistics rarely cancel; the same for every kernel.
     */
    static float runShift(float[] a, int p, int n) {
        float s;
        int c = Math.min(n, SHIFT_VALUES);
        if (c == SHIFT_VALUES) {
            s = (((a[p] + a[p + 8]) + (a[p + 4] + a[p + 12])) + ((a[p + 2] + a[p + 10]) + (a[p + 6] + a[p + 14])))
                    + (((a[p + 1] + a[p + 9]) + (a[p + 5] + a[p + 13]))
                            + ((a[p + 3] + a[p + 11]) + (a[p + 7] + a[p + 15])));
        } else {
            s = 0f;
            for (int i = 0; i < c; i++) {
                s += a[p + i];
            }
        }
        float k = s / c;
        return Float.isFinite(k) ? k : 0f;
    }

    /**
     * Adds {@code a[off .. off+len)} (the values themselves: means are absolute) in runs of at most
     * {@link RowKernels#RUN}, each taken in one pass from its own shift
     * ({@link RowKernels#sumAndSquaresShifted}) and merged by {@link #mergeRunOnePass}, in order.
     */
    void addOnePass(RowKernels kern, float[] a, int off, int len) {
        int end = off + len;
        for (int p = off; p < end; p += RowKernels.RUN) {
            int n = Math.min(RowKernels.RUN, end - p);
            float k = runShift(a, p, n);
            float sum = kern.sumAndSquaresShifted(a, p, n, k);
            mergeRunOnePass(kern, a, p, n, k, sum, kern.squares);
        }
    }

    /**
     * The squared deviations of {@code n} values from their one-pass float32 sums of
     * {@code d = x - k} ({@code sum}, {@code squares}): {@code squares - sum^2 / n} in double, or NaN
     * when that would cancel more than {@link #ONE_PASS_LIMIT} allows ({@code n mean_d^2 >
     * LIMIT M2}: the values' mean is far from {@code k}) or a sum is not finite. The caller then
     * takes the values again in two passes.
     */
    static double onePassM2(float sum, float squares, int n) {
        if (!Float.isFinite(sum) || !Float.isFinite(squares)) {
            return Double.NaN;
        }
        double cancelled = (double) sum / n * sum; // n mean_d^2, never negative
        double m2 = squares - cancelled;
        return cancelled <= ONE_PASS_LIMIT * m2 ? m2 : Double.NaN;
    }

    /**
     * Merges the run {@code a[p .. p+n)} from its one-pass float32 sums of {@code d = a[i] - k}
     * ({@code sum} and {@code squares}): {@code M2 = squares - sum^2 / n} in double. The formula
     * cancels when the run's mean is far from {@code k}; when {@code n mean_d^2 > }
     * {@link #ONE_PASS_LIMIT}{@code  M2} the run is taken again in two passes (from the cache: it was
     * just read), and a run whose float32 results are not finite is redone in double. So the
     * result is never {@code E[x^2] - E[x]^2} with a large cancellation, for any data.
     */
    void mergeRunOnePass(RowKernels kern, float[] a, int p, int n, float k, float sum, float squares) {
        double m2 = onePassM2(sum, squares, n);
        if (!Double.isNaN(m2)) {
            merge(n, k + (double) sum / n, m2);
            return;
        }
        if (Float.isFinite(sum) && Float.isFinite(squares)) {
            float runMean = sum / n;
            float q = kern.sumSquaredDeviations(a, p, n, k, runMean);
            if (Float.isFinite(q)) {
                merge(n, k + (double) runMean, q);
                return;
            }
        }
        addRunExact(a, p, n, k, k);
    }

    /**
     * @return the sum of squares of {@code a[off .. off+len)}: float32 per run (by the kernels), the
     *     runs added in double in order; a run whose float32 sum is not finite is redone in double
     */
    static double sumOfSquares(RowKernels kern, float[] a, int off, int len) {
        double total = 0;
        int end = off + len;
        for (int p = off; p < end; p += RowKernels.RUN) {
            int n = Math.min(RowKernels.RUN, end - p);
            total += runSumOfSquares(kern.sumSquares(a, p, n), a, p, n);
        }
        return total;
    }

    /** @return the run's float32 sum of squares {@code s} if finite, else the run's sum redone in double */
    static double runSumOfSquares(float s, float[] a, int p, int n) {
        return Float.isFinite(s) ? s : sumOfSquares(a, p, n);
    }
}
