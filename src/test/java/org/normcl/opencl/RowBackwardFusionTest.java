package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Optional;
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
        "FLOAT32, 130, 1024, true, false", "FLOAT16, 200, 96, false, true", "FLOAT64, 150, 33, false, true"})
    void fusedEqualsTheUnfusedKernels(DType type, int rows, int cols, boolean rms, boolean hasScale) {
        String old = System.getProperty(WorkSizing.STRATEGY_PROPERTY);
        System.setProperty(WorkSizing.STRATEGY_PROPERTY, "serial"); // the family that fuses, on any device
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), Optional.empty())) {
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            int n = rows * cols;
            SplittableRandom r = new SplittableRandom(n * 7L + cols);
            float[] x = new float[n];
            float[] dy = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) (r.nextGaussian() * 2 + 3);
                dy[i] = (float) r.nextGaussian();
            }
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
        } finally {
            if (old == null) {
                System.clearProperty(WorkSizing.STRATEGY_PROPERTY);
            } else {
                System.setProperty(WorkSizing.STRATEGY_PROPERTY, old);
            }
        }
    }

    private static void assertSameBits(ClBackend be, Buffer a, Buffer b, long n, String what) {
        assertArrayEquals(TensorBits.of(be.read(a, Shape.of(n))), TensorBits.of(be.read(b, Shape.of(n))), what);
    }
}
