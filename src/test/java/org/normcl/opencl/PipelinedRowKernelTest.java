package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.reference.Reference64;
import org.normcl.testing.Data;
import org.normcl.testing.SystemProperties;
import org.normcl.testing.TensorBits;
import org.normcl.testing.Tolerances;

/**
 * Long contiguous rows on the pipelined kernel (row_norm_pipelined: the statistics of row r + 1
 * gathered while row r is normalized, full runs of both in one loop) against the row-at-a-time
 * kernel (row_norm_serial) bit for bit: y, the saved mean and the inverse standard deviation, at
 * the device's vector width and at 4 lanes. Rows of whole runs and rows with a tail shorter than a
 * run, scale with and without bias and no affine at all, layer norm, RMS norm and epsilon outside
 * the square root, float32, float64 and float16, a row whose runs' one-pass sums would cancel (the
 * run's values far from its shift: the two-pass redo) and rows holding NaN and infinities. Float32
 * layer and RMS norm are also held to the float64 reference within {@link Tolerances}, so that the
 * two kernels cannot agree on a wrong answer.
 */
class PipelinedRowKernelTest {
    private static final float EPS = 1e-5f;
    private DeviceInfo device;
    private ClBackend pipelined;
    private ClBackend rowAtATime;

    @BeforeEach
    void open() {
        device = ClTestDevices.firstNonSimulator();
    }

    @AfterEach
    void close() {
        if (pipelined != null) {
            pipelined.close();
        }
        if (rowAtATime != null) {
            rowAtATime.close();
        }
    }

    /** Opens both backends on the serial family at {@code vectorWidth} (0: the device's). */
    private void openBoth(int vectorWidth) {
        Tuning base = Tuning.defaults().withVectorWidth(vectorWidth);
        try (SystemProperties p = SystemProperties.set(WorkSizing.STRATEGY_PROPERTY, "serial")) {
            String index = Integer.toString(device.index());
            pipelined = (ClBackend) ClRuntime.open(index, base.withPipelineMinRowBytes(0).withPipelineItemsPerUnit(2));
            rowAtATime = (ClBackend) ClRuntime.open(index, base.withPipelineMinRowBytes(Tuning.NEVER));
        }
    }

    @ParameterizedTest(name = "{0} {1}x{2} {3} scale {4} bias {5} VW {6}")
    @CsvSource({
        // whole runs, runs with a tail, and rows shorter than a run (no full run to fuse)
        "FLOAT32, 9, 3109, MEAN_VAR, true, true, 0", "FLOAT32, 9, 3109, MEAN_VAR, true, true, 4",
        "FLOAT32, 7, 2048, MEAN_VAR, true, false, 0", "FLOAT32, 6, 1500, MEAN_VAR, false, false, 0",
        "FLOAT32, 11, 700, MEAN_VAR, true, true, 0",
        "FLOAT32, 9, 3109, RMS, true, false, 0", "FLOAT32, 9, 3109, RMS, true, false, 4",
        "FLOAT32, 8, 4096, RMS, false, false, 0",
        "FLOAT32, 6, 2100, MEAN_VAR_EPS_OUTSIDE, true, true, 0",
        // other element types
        "FLOAT64, 5, 2100, MEAN_VAR, true, true, 0", "FLOAT64, 5, 2100, RMS, true, false, 0",
        "FLOAT16, 5, 2100, MEAN_VAR, true, true, 0", "FLOAT16, 5, 3072, RMS, true, false, 0"})
    void pipelinedRowsGiveTheRowAtATimeBits(DType type, int rows, int cols, StatMode mode, boolean scale,
            boolean bias, int vectorWidth) {
        openBoth(vectorWidth);
        assumeTrue(pipelined.supports(type), type + " is not supported by " + device.name());
        String name = type + " " + rows + "x" + cols + " " + mode + (scale ? " scale" : "") + (bias ? " bias" : "")
                + " VW " + vectorWidth;
        float[] x = Data.gaussian(name, rows * cols, 3, 2);
        // Row 2: each run climbs from 0 to 1000, far from its shift (the mean of its first 16
        // values), so its one-pass sums would cancel and the run takes the two-pass redo.
        for (int i = 0; i < cols; i++) {
            x[2 * cols + i] += 1000f * (i % 1024) / 1024f;
        }
        x[4 * cols + cols / 2] = Float.NaN;
        x[rows * cols - 3] = Float.POSITIVE_INFINITY; // the last row: not pipelined into a next one
        float[] w = Data.uniform(name + " w", cols, 0.5, 1.5);
        float[] b = Data.uniform(name + " b", cols, -1, 1);
        boolean hasBias = bias && mode != StatMode.RMS;
        RowNormPlan plan = RowNormPlan.contiguous(rows, cols, mode, EPS, 1, cols, 1, scale, hasBias);
        HostTensor[] got = run(pipelined, plan, type, x, scale ? w : null, hasBias ? b : null);
        HostTensor[] want = run(rowAtATime, plan, type, x, scale ? w : null, hasBias ? b : null);
        String[] what = {" y", " mean", " inverse std"};
        for (int i = 0; i < got.length; i++) {
            if (want[i] != null) {
                assertArrayEquals(TensorBits.of(want[i]), TensorBits.of(got[i]), name + what[i]);
            }
        }
        if (type == DType.FLOAT32 && mode != StatMode.MEAN_VAR_EPS_OUTSIDE) {
            assertNearReference(name, rows, cols, mode, x, scale ? w : null, hasBias ? b : null,
                    (float[]) got[0].array());
        }
    }

    /** y, mean (null for RMS) and inverse standard deviation of one call. */
    private static HostTensor[] run(ClBackend be, RowNormPlan plan, DType type, float[] x, float[] w, float[] b) {
        int size = x.length;
        int rows = (int) plan.rows();
        int cols = (int) plan.cols();
        boolean rms = plan.mode() == StatMode.RMS;
        DType st = type.statistics();
        try (Buffer xb = be.importHost(HostTensor.convert(x, type, size));
                Buffer wb = w == null ? null : be.importHost(HostTensor.of(w, cols));
                Buffer bb = b == null ? null : be.importHost(HostTensor.of(b, cols));
                Buffer y = be.allocate(type, size);
                Buffer mean = be.allocate(st, rows);
                Buffer inv = be.allocate(st, rows)) {
            be.rowNorm(plan, xb, wb, bb, y, rms ? null : mean, inv);
            return new HostTensor[] {be.read(y, Shape.of(size)), rms ? null : be.read(mean, Shape.of(rows)),
                be.read(inv, Shape.of(rows))};
        }
    }

    /** The rows without NaN or infinity, within Tolerances.element of the float64 reference. */
    private static void assertNearReference(String name, int rows, int cols, StatMode mode, float[] x, float[] w,
            float[] b, float[] y) {
        long[] dims = {rows, cols};
        double[] ref;
        double[] mean;
        double[] inv;
        if (mode == StatMode.RMS) {
            Reference64.RmsNormalized r = Reference64.rmsNorm(x, dims, -1, EPS, w);
            ref = r.y();
            mean = new double[rows];
            inv = r.invRms();
        } else {
            Reference64.Normalized r = Reference64.layerNorm(x, dims, -1, EPS, w, b);
            ref = r.y();
            mean = r.mean();
            inv = r.invStd();
        }
        double[] bound = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int row = i / cols;
            bound[i] = Double.isFinite(ref[i])
                    ? Tolerances.element((x[i] - mean[row]) * inv[row], Math.abs(mean[row]) * inv[row],
                            w == null ? 1 : w[i % cols], b == null ? 0 : b[i % cols], ref[i])
                    : 0;
        }
        Tolerances.assertWithin(name + " y against float64", y, ref, bound);
    }
}
