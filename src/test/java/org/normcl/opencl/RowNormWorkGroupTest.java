package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.testing.Data;

/**
 * row_norm_wg, the work-group (GPU) kernel for contiguous rows with one affine entry per value,
 * run on the CPU driver with the work-group family forced ({@code -Dnormcl.kernels=group}),
 * against a float64 reference computed here from the same float32 inputs: rows of 1 .. 65536
 * values (odd tails past the last whole vector, several rows per work-group for short rows, rows
 * kept in registers and rows streamed from global memory), layer norm (groups 1) and group
 * norm of (N, C) data (affine entries per group and column), mean-variance, RMS and epsilon-outside
 * statistics, with and without scale and bias, the saved mean and inverse standard deviation, and
 * rows whose mean is far from their first value (the shift).
 *
 * <p><b>Tolerances.</b> With u = 2^-24 (float32 rounding), every float32 sum the kernel forms is a
 * recursive chain of at most 64 + 4 + 8 additions in a work-item (its registers or, for long rows,
 * its strided vectors: 65536 / (256 * 8) = 32, a vector's horizontal sum, its tail) plus at most 8
 * levels of the work-group's tree: fewer than 256 = 2^8 roundings, each at most u times the partial
 * sum. So the shifted mean is off by at most 2^-16 max|x - k| (k the row's first value; 0 for RMS),
 * and y = ((x - k) - m) inv w + b by at most 2^-16 (inv |w| max|x - k| + |y| + |b|): the mean's
 * error scaled, and a relative error of that order in inv and in the few roundings of the
 * expression. The variance, a sum of squares of deviations each off by that much, is off by a
 * relative 2^-16 (1 + (max|x - k| inv)^2), which bounds inv's relative error too. These are
 * worst-case bounds, not estimates; a wrong row, value or affine entry is off by O(1).
 */
class RowNormWorkGroupTest {
    private static final float EPS = 1e-5f;
    private static final double BOUND = 0x1p-16;
    private ClBackend group;

    @BeforeEach
    void open() {
        group = ClTestDevices.openWithKernels(ClTestDevices.firstNonSimulator(), "group");
    }

    @AfterEach
    void close() {
        if (group != null) {
            group.close();
        }
    }

    /**
     * Runs small cases under a simulator: {@code oclgrind java -cp ... org.normcl.opencl.RowNormWorkGroupTest
     * oclgrind}; Oclgrind reports out-of-bounds accesses, uninitialized values, data races and
     * barriers not reached by every work-item.
     */
    public static void main(String[] args) {
        String selector = args.length > 0 ? args[0] : "oclgrind";
        String[] cases = {"5, 1, MEAN_VAR, 1, true, true", "9, 3, MEAN_VAR, 1, true, true",
            "11, 7, RMS, 1, true, false", "7, 37, MEAN_VAR, 3, true, true",
            "3, 128, MEAN_VAR_EPS_OUTSIDE, 1, false, true",
            "2, 1000, MEAN_VAR, 1, true, false", "1, 4097, MEAN_VAR, 1, true, true", "2, 20000, RMS, 1, true, false",
            "2, 20001, MEAN_VAR, 2, true, true"};
        int failed = 0;
        System.setProperty(WorkSizing.STRATEGY_PROPERTY, "group");
        try (ClBackend b = ClRuntime.open(selector, java.util.Optional.empty())) {
            for (String c : cases) {
                String[] f = c.split(", ");
                Case k = new Case(Integer.parseInt(f[0]), Integer.parseInt(f[1]), StatMode.valueOf(f[2]),
                        Integer.parseInt(f[3]), Boolean.parseBoolean(f[4]), Boolean.parseBoolean(f[5]));
                try {
                    check(b, k, inputs(k, k.toString()));
                    check(b, k, farMean(k));
                    System.out.println("  ok   " + k);
                } catch (AssertionError e) {
                    failed++;
                    System.out.println("  FAIL " + k + ": " + e.getMessage());
                }
            }
        } finally {
            System.clearProperty(WorkSizing.STRATEGY_PROPERTY);
        }
        System.out.println("RowNormWorkGroupTest: " + cases.length + " cases, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    /** rows x cols in `groups` groups of rows (affine entries groups x cols: group g's at g * cols). */
    private record Case(int rows, int cols, StatMode mode, int groups, boolean scale, boolean bias) {
        RowNormPlan plan() {
            return RowNormPlan.contiguous(rows, cols, mode, EPS, groups, cols, 1, scale,
                    bias && mode != StatMode.RMS);
        }

        int size() {
            return rows * cols;
        }

        int affine() {
            return groups * cols;
        }
    }

    private static float[][] inputs(Case k, String seed) {
        return new float[][] {Data.gaussian(seed, k.size(), 3, 2), Data.uniform(seed + " w", k.affine(), 0.5, 1.5),
            Data.uniform(seed + " b", k.affine(), -1, 1)};
    }

    /** Values 1e4 + N(0, 1), each row's first value 0: a one-pass M2 from the shift would cancel. */
    private static float[][] farMean(Case k) {
        float[][] in = inputs(k, "far " + k);
        in[0] = Data.gaussian("far x " + k, k.size(), 1e4, 1);
        for (int r = 0; r < k.rows(); r++) {
            in[0][r * k.cols()] = 0f;
        }
        return in;
    }

    @ParameterizedTest
    @CsvSource({
        // rows, cols, mode, groups, scale, bias: short rows many to a work-group, odd tails, one
        // and several rows per work-group, rows in registers and streamed rows (over 64 x 256 values)
        "300, 1, MEAN_VAR, 1, true, true", "257, 3, MEAN_VAR, 1, true, true", "100, 7, RMS, 1, true, false",
        "130, 128, MEAN_VAR, 1, true, true", "65, 128, RMS, 1, false, false", "33, 128, MEAN_VAR, 4, true, true",
        "9, 1000, MEAN_VAR, 1, true, false", "9, 1000, MEAN_VAR_EPS_OUTSIDE, 1, false, true",
        "8, 1024, MEAN_VAR, 1, true, true", "8, 1024, RMS, 1, true, false", "5, 4097, MEAN_VAR, 1, true, true",
        "5, 4097, RMS, 1, false, false", "3, 16385, MEAN_VAR, 3, true, true", "3, 65536, MEAN_VAR, 1, true, true",
        "2, 65536, RMS, 1, true, false", "2, 65537, MEAN_VAR_EPS_OUTSIDE, 1, false, false"})
    void matchesFloat64(int rows, int cols, StatMode mode, int groups, boolean scale, boolean bias) {
        Case k = new Case(rows, cols, mode, groups, scale, bias);
        assertTrue(group.sizing().rowItems(cols, 256) > 0, "row_norm_wg is not the kernel of the group family");
        check(group, k, inputs(k, k.toString()));
    }

    /** The mean far from the first value, in registers (1000, 4097) and streamed (65536, 65537). */
    @ParameterizedTest
    @CsvSource({"20, 7, MEAN_VAR, 1, true, true", "6, 1000, MEAN_VAR, 1, true, true",
        "3, 4097, MEAN_VAR_EPS_OUTSIDE, 1, false, true", "2, 65536, MEAN_VAR, 1, true, true",
        "3, 65537, MEAN_VAR, 1, false, false"})
    void meanFarFromFirstValue(int rows, int cols, StatMode mode, int groups, boolean scale, boolean bias) {
        Case k = new Case(rows, cols, mode, groups, scale, bias);
        check(group, k, farMean(k));
    }

    /** Several rows per work-group for short rows, one work-group per row for long ones. */
    @Test
    void itemsPerRowFollowTheRowLength() {
        WorkSizing s = group.sizing();
        int vw = s.vectorWidth();
        assertEquals(1, s.rowItems(1, 256));
        assertEquals(1, s.rowItems(2L * vw, 256));
        assertEquals(2, s.rowItems(2L * vw + 1, 256));
        assertEquals(256, s.rowItems(65536, 256));
        assertEquals(64, s.rowItems(65536, 64));
        assertTrue(s.rowItems(128, 256) < 256, "rows of 128 share a work-group");
    }

    /** A NaN or infinity in a row makes that row's y NaN and leaves the other rows alone. */
    @Test
    void nonFiniteValuesStayInTheirRow() {
        Case k = new Case(6, 300, StatMode.MEAN_VAR, 1, true, true);
        float[][] in = inputs(k, "nan");
        in[0][1 * 300 + 17] = Float.NaN;
        in[0][3 * 300 + 299] = Float.POSITIVE_INFINITY;
        float[] y = run(group, k, in)[0];
        for (int r = 0; r < k.rows(); r++) {
            for (int t = 0; t < k.cols(); t++) {
                float v = y[r * k.cols() + t];
                if (r == 1 || r == 3) {
                    assertTrue(Float.isNaN(v), "row " + r + " value " + t);
                } else {
                    assertFalse(Float.isNaN(v) || Float.isInfinite(v), "row " + r + " value " + t);
                }
            }
        }
    }

    /** y, mean and inv of the backend, statistics and apply in one call, and statistics alone. */
    private static float[][] run(ClBackend be, Case k, float[][] in) {
        RowNormPlan p = k.plan();
        boolean rms = k.mode() == StatMode.RMS;
        try (Buffer xb = be.importHost(HostTensor.of(in[0], k.size()));
                Buffer wb = k.scale() ? be.importHost(HostTensor.of(in[1], k.affine())) : null;
                Buffer bb = p.hasBias() ? be.importHost(HostTensor.of(in[2], k.affine())) : null;
                Buffer y = be.allocate(DType.FLOAT32, k.size());
                Buffer mean = be.allocate(DType.FLOAT32, k.rows());
                Buffer inv = be.allocate(DType.FLOAT32, k.rows());
                Buffer inv2 = be.allocate(DType.FLOAT32, k.rows())) {
            be.rowNorm(p, xb, wb, bb, y, rms ? null : mean, inv);
            be.rowNorm(p, xb, wb, bb, null, null, inv2); // SKIP_APPLY: the same statistics
            return new float[][] {be.read(y, Shape.of(k.size())).toFloats(),
                rms ? null : be.read(mean, Shape.of(k.rows())).toFloats(), be.read(inv, Shape.of(k.rows())).toFloats(),
                be.read(inv2, Shape.of(k.rows())).toFloats()};
        }
    }

    private static void check(ClBackend be, Case k, float[][] in) {
        float[][] got = run(be, k, in);
        float[] x = in[0];
        int cols = k.cols();
        boolean rms = k.mode() == StatMode.RMS;
        boolean far = x.length > 1 && x[0] == 0f && Math.abs(x[1]) > 1000;
        for (int r = 0; r < k.rows(); r++) {
            int b0 = r * cols;
            double shift = rms ? 0 : x[b0];
            double sum = 0;
            double maxDev = 0;
            for (int t = 0; t < cols; t++) {
                sum += x[b0 + t];
                maxDev = Math.max(maxDev, Math.abs(x[b0 + t] - shift));
            }
            double mean = rms ? 0 : sum / cols;
            double q = 0;
            for (int t = 0; t < cols; t++) {
                double d = x[b0 + t] - mean;
                q += d * d;
            }
            double var = q / cols;
            double inv = k.mode() == StatMode.MEAN_VAR_EPS_OUTSIDE ? 1 / (Math.sqrt(var) + EPS)
                    : 1 / Math.sqrt(var + EPS);
            String row = k + " row " + r;
            double invTol = far ? 1e-2 : BOUND * (1 + Math.pow(maxDev * inv, 2));
            assertEquals(inv, got[2][r], invTol * inv, row + " inv");
            assertEquals(got[2][r], got[3][r], 0f, row + " inv without y");
            if (!rms) {
                assertEquals(mean, got[1][r], BOUND * maxDev + 0x1p-23 * Math.abs(mean), row + " mean");
            }
            int a0 = (r % k.groups()) * cols;
            for (int t = 0; t < cols; t++) {
                double w = k.scale() ? in[1][a0 + t] : 1;
                double b = k.plan().hasBias() ? in[2][a0 + t] : 0;
                double want = (x[b0 + t] - mean) * inv * w + b;
                // The far-mean rows: a float32 near 1e4 is held to 2^-10 (1e-3 of the rows' standard
                // deviation), so x - m is no closer than that; 1e-2 leaves room for the mean's
                // rounding, where a one-pass M2 from the shift 0 would cancel terms of 1e8 (ulp 8).
                double tol = far ? 1e-2 * (Math.abs(w) + 1)
                        : BOUND * (inv * Math.abs(w) * maxDev + Math.abs(want) + Math.abs(b));
                assertEquals(want, got[0][b0 + t], tol, row + " y[" + t + "]");
            }
        }
    }
}
