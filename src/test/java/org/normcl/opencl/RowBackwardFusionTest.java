package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.testing.TensorBits;

/**
 * Layer and RMS norm backward fused with the parameter gradients (row_backward_affine_rows, the CPU
 * family's {@code rowNormBackwardWithGrad}) gives the bits of row_backward_serial followed by
 * affine_grad_rows and affine_grad_finalize: dX, dScale and dBias, for one row block and several,
 * rows with a scalar tail, with and without scale, for float32, float16 and float64. The unfused
 * kernels are checked against float64 gradients and finite differences in BackwardAccuracyTest, so
 * equality carries those bounds over (and keeps dScale/dBias deterministic).
 */
class RowBackwardFusionTest {
    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator();
    }

    @ParameterizedTest(name = "{0} {1}x{2} rms {3} scale {4}")
    @CsvSource({"FLOAT32, 300, 128, false, true", "FLOAT32, 1000, 77, false, true", "FLOAT32, 8, 5000, true, true",
        "FLOAT32, 130, 1024, true, false", "FLOAT16, 200, 96, false, true", "FLOAT64, 150, 33, false, true",
        "FLOAT32, 37, 3001, false, true", "FLOAT64, 21, 1031, true, true"})
    void fusedEqualsTheUnfusedKernels(DType type, int rows, int cols, boolean rms, boolean hasScale) {
        try (ClBackend be = ClTestDevices.openWithKernels(device, "serial")) { // the family that fuses
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            int n = rows * cols;
            SplittableRandom r = new SplittableRandom(n * 7L + cols);
            float[] x = gaussian(r, n, 2, 3);
            float[] dy = gaussian(r, n, 1, 0);
            float[] w = new float[cols];
            for (int c = 0; c < cols; c++) {
                w[c] = (float) (0.5 + r.nextDouble());
            }
            StatMode mode = rms ? StatMode.RMS : StatMode.MEAN_VAR;
            RowNormPlan plan = RowNormPlan.contiguous(rows, cols, mode, 1e-5f, 1, cols, 1, hasScale, !rms);
            AffineGradPlan grad = new AffineGradPlan(rows, cols, 1, 1, cols, rms, 1);
            DType st = type.statistics();
            try (Buffer xb = be.importHost(HostTensor.convert(x, type, n));
                    Buffer dyb = be.importHost(HostTensor.convert(dy, type, n));
                    Buffer wb = hasScale ? be.importHost(HostTensor.of(w, cols)) : null;
                    Buffer mean = be.allocate(st, rows);
                    Buffer inv = be.allocate(st, rows);
                    Buffer y = be.allocate(type, n);
                    Buffer dx1 = be.allocate(type, n);
                    Buffer dx2 = be.allocate(type, n);
                    Buffer ds1 = be.allocate(DType.FLOAT32, cols);
                    Buffer ds2 = be.allocate(DType.FLOAT32, cols);
                    Buffer db1 = be.allocate(DType.FLOAT32, cols);
                    Buffer db2 = be.allocate(DType.FLOAT32, cols)) {
                be.rowNorm(plan, xb, wb, null, y, rms ? null : mean, inv);
                be.rowNormBackward(plan, dyb, xb, wb, mean, inv, dx1);
                be.affineGrad(grad, dyb, xb, mean, inv, ds1, rms ? null : db1, null);
                be.rowNormBackwardWithGrad(plan, grad, dyb, xb, wb, mean, inv, dx2, ds2, rms ? null : db2);
                String what = type + " " + rows + "x" + cols;
                assertSameBits(be, dx1, dx2, n, what + " dX");
                assertSameBits(be, ds1, ds2, cols, what + " dScale");
                if (!rms) {
                    assertSameBits(be, db1, db2, cols, what + " dBias");
                }
            }
        }
    }

    /**
     * Group and instance norm (channels-first) take row_backward_affine_slices: dX has the bits of
     * row_backward_serial; dScale and dBias are summed per sample then over the samples in order,
     * a different fixed order from affine_grad_serial's parts, so they agree within compensated
     * float32 rounding (a few ulps of the sum of |terms|, here under 1e-5 of it) and repeat bit for
     * bit from run to run.
     */
    @ParameterizedTest(name = "{0} N={1} C={2} G={3} spatial={4} per-group {5}")
    @CsvSource({"FLOAT32, 4, 12, 3, 49, false", "FLOAT32, 3, 8, 8, 1000, false", "FLOAT32, 5, 6, 2, 17, true",
        "FLOAT16, 2, 8, 4, 64, false", "FLOAT64, 3, 6, 3, 33, false"})
    void slicesFusedMatchTheUnfusedKernels(DType type, int n, int c, int g, int spatial, boolean perGroup) {
        try (ClBackend be = ClTestDevices.openWithKernels(device, "serial")) { // the family that fuses
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            int cpg = c / g;
            int cols = cpg * spatial;
            int rows = n * g;
            int size = rows * cols;
            int affine = perGroup ? g : c;
            // Per-group affine (ONNX opset 18): one entry per slice, as NormEngine plans it.
            RowNormPlan plan = perGroup ? RowNormPlan.contiguous(rows, cols, StatMode.MEAN_VAR, 1e-5f, g, 1, cols, true, true)
                    : RowNormPlan.contiguous(rows, cols, StatMode.MEAN_VAR, 1e-5f, g, cpg, spatial, true, true);
            AffineGradPlan grad = perGroup ? new AffineGradPlan(n, g, cols, g, 1, false)
                    : new AffineGradPlan(n, c, spatial, g, cpg, false);
            SplittableRandom r = new SplittableRandom(size + 17L * c);
            float[] x = gaussian(r, size, 2, 3);
            float[] dy = gaussian(r, size, 1, 0);
            float[] w = new float[affine];
            for (int i = 0; i < affine; i++) {
                w[i] = (float) (0.5 + r.nextDouble());
            }
            DType st = type.statistics();
            try (Buffer xb = be.importHost(HostTensor.convert(x, type, size));
                    Buffer dyb = be.importHost(HostTensor.convert(dy, type, size));
                    Buffer wb = be.importHost(HostTensor.of(w, affine));
                    Buffer mean = be.allocate(st, rows);
                    Buffer inv = be.allocate(st, rows);
                    Buffer dx1 = be.allocate(type, size);
                    Buffer dx2 = be.allocate(type, size);
                    Buffer ds1 = be.allocate(DType.FLOAT32, affine);
                    Buffer ds2 = be.allocate(DType.FLOAT32, affine);
                    Buffer ds3 = be.allocate(DType.FLOAT32, affine);
                    Buffer db1 = be.allocate(DType.FLOAT32, affine);
                    Buffer db2 = be.allocate(DType.FLOAT32, affine)) {
                be.rowNorm(plan, xb, null, null, null, mean, inv);
                be.rowNormBackward(plan, dyb, xb, wb, mean, inv, dx1);
                be.affineGrad(grad, dyb, xb, mean, inv, ds1, db1, null);
                be.rowNormBackwardWithGrad(plan, grad, dyb, xb, wb, mean, inv, dx2, ds2, db2);
                String what = type + " N=" + n + " C=" + c + " G=" + g + " spatial=" + spatial;
                assertSameBits(be, dx1, dx2, size, what + " dX");
                float[] s1 = (float[]) be.read(ds1, Shape.of(affine)).array();
                float[] s2 = (float[]) be.read(ds2, Shape.of(affine)).array();
                float[] b1 = (float[]) be.read(db1, Shape.of(affine)).array();
                float[] b2 = (float[]) be.read(db2, Shape.of(affine)).array();
                double terms = (double) n * cols / (perGroup ? 1 : cpg) * 4; // |dy| |xhat| of order 1..4
                for (int i = 0; i < affine; i++) {
                    assertEquals(s1[i], s2[i], 1e-5 * terms, what + " dScale[" + i + "]");
                    assertEquals(b1[i], b2[i], 1e-5 * terms, what + " dBias[" + i + "]");
                }
                be.rowNormBackwardWithGrad(plan, grad, dyb, xb, wb, mean, inv, dx2, ds3, db2);
                assertSameBits(be, ds2, ds3, affine, what + " dScale, run to run");
            }
        }
    }

    /**
     * Group norm of (N, C) data (rows of the C / G channels of a group, per-channel parameters) takes
     * row_backward_affine_groups: dX, dScale and dBias have the bits of row_backward_rows followed by
     * affine_grad_rows, for rows of a multiple of the vector width (taken as a constant) and not,
     * with and without scale, for float32, float16 and float64; rows shorter than the vector width
     * in a multiple of 16 groups (a whole number of lane blocks for VW 4, 8 and 16) take the lanes, a
     * power of two long (1, 2, 4, 8: the compiler's constant) or not (3); in other group counts (of 3
     * values, and of one: instance norm) they keep the two kernels and their bits. Rows of exactly VW
     * values take VW groups of a sample at a time (16 and 34 groups: a block and none left, two
     * blocks and two rows one at a time, where VW is 16).
     */
    @ParameterizedTest(name = "{0} N={1} C={2} G={3} scale {4}")
    @CsvSource({"FLOAT32, 300, 1024, 32, true", "FLOAT32, 97, 64, 4, true", "FLOAT32, 50, 192, 3, false",
        "FLOAT32, 333, 12, 4, true", "FLOAT32, 77, 6, 6, true", "FLOAT32, 129, 100, 2, true",
        "FLOAT16, 60, 64, 2, true", "FLOAT64, 45, 48, 3, true",
        "FLOAT32, 200, 128, 32, true", "FLOAT32, 101, 64, 32, false", "FLOAT32, 70, 16, 16, true",
        "FLOAT32, 90, 144, 48, true", "FLOAT16, 64, 128, 16, true", "FLOAT64, 40, 256, 64, true",
        "BFLOAT16, 33, 256, 32, false", "FLOAT32, 80, 256, 16, true", "FLOAT32, 50, 544, 34, false",
        "FLOAT64, 30, 512, 32, true"})
    void groupsFusedEqualTheUnfusedKernels(DType type, int n, int c, int g, boolean hasScale) {
        try (ClBackend be = ClTestDevices.openWithKernels(device, "serial")) { // the family that fuses
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            int cpg = c / g;
            int rows = n * g;
            int size = n * c;
            RowNormPlan plan = RowNormPlan.contiguous(rows, cpg, StatMode.MEAN_VAR, 1e-5f, g, cpg, 1, hasScale, true);
            AffineGradPlan grad = new AffineGradPlan(n, c, 1, g, cpg, false);
            SplittableRandom r = new SplittableRandom(size + 31L * c);
            float[] x = gaussian(r, size, 2, 3);
            float[] dy = gaussian(r, size, 1, 0);
            float[] w = new float[c];
            for (int i = 0; i < c; i++) {
                w[i] = (float) (0.5 + r.nextDouble());
            }
            DType st = type.statistics();
            try (Buffer xb = be.importHost(HostTensor.convert(x, type, size));
                    Buffer dyb = be.importHost(HostTensor.convert(dy, type, size));
                    Buffer wb = hasScale ? be.importHost(HostTensor.of(w, c)) : null;
                    Buffer mean = be.allocate(st, rows);
                    Buffer inv = be.allocate(st, rows);
                    Buffer dx1 = be.allocate(type, size);
                    Buffer dx2 = be.allocate(type, size);
                    Buffer ds1 = be.allocate(DType.FLOAT32, c);
                    Buffer ds2 = be.allocate(DType.FLOAT32, c);
                    Buffer db1 = be.allocate(DType.FLOAT32, c);
                    Buffer db2 = be.allocate(DType.FLOAT32, c)) {
                be.rowNorm(plan, xb, null, null, null, mean, inv);
                be.rowNormBackward(plan, dyb, xb, wb, mean, inv, dx1);
                be.affineGrad(grad, dyb, xb, mean, inv, ds1, db1, null);
                be.rowNormBackwardWithGrad(plan, grad, dyb, xb, wb, mean, inv, dx2, ds2, db2);
                String what = type + " N=" + n + " C=" + c + " G=" + g;
                assertSameBits(be, dx1, dx2, size, what + " dX");
                assertSameBits(be, ds1, ds2, c, what + " dScale");
                assertSameBits(be, db1, db2, c, what + " dBias");
            }
        }
    }

    /** @return n values of {@code r.nextGaussian() * sd + mean} */
    private static float[] gaussian(SplittableRandom r, int n, double sd, double mean) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * sd + mean);
        }
        return a;
    }

    private static void assertSameBits(ClBackend be, Buffer a, Buffer b, long n, String what) {
        assertArrayEquals(TensorBits.of(be.read(a, Shape.of(n))), TensorBits.of(be.read(b, Shape.of(n))), what);
    }
}
