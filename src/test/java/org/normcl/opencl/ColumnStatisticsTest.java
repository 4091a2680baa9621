package org.normcl.opencl;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.StatMode;
import org.normcl.reference.Tolerance;

/**
 * The channel statistics of an (N, C) matrix (inner 1: BatchNorm1d, channels-last tensors) on the
 * CPU kernel family, against a float64 two-pass reference: channel_partial_rows (a work-item per
 * block of rows, VW channels at a time, four rows per visit of its sums, tiles of 1024 channels),
 * and channel_partial_cols where not even one block's scratch fits an allocation. The shapes
 * reach every branch: vector lanes and a tail of channels, several tiles, row blocks whose runs
 * end with 1-3 single rows, one row, and channels holding a NaN or an infinity.
 *
 * <p>Tolerances. float64: the kernels' sums of at most 64 values then Chan's merge are within
 * about 1e-14 of the reference, so 1e-12 relative. float32: X is 100 + 3 N(0, 1) and every value
 * is taken from a shift within a few standard deviations of it (exact, Sterbenz), so a run's sum
 * of at most 64 terms of size about 10 is within about 64 * 6e-8 * 10 of its true value, a few
 * 1e-7 of sigma on the mean after the division; the mean is saved as a float32, one ulp of 100
 * (7.6e-6); M2 keeps about 1e-6 relative. So the mean within 2e-5 and M2 within 1e-4 relative:
 * a lost row or a lost lane moves them by at least sigma / rows.
 */
class ColumnStatisticsTest {
    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator();
    }

    @AfterEach
    void resetHooks() {
        FaultInjection.reset();
    }

    @ParameterizedTest(name = "{0} {1}x{2} allocation limit {3}")
    @CsvSource({"FLOAT32, 1, 1, 0", "FLOAT32, 7, 16, 0", "FLOAT32, 130, 33, 0", "FLOAT32, 515, 2051, 0",
        "FLOAT32, 1187, 48, 0", "FLOAT32, 64, 1024, 0", "FLOAT64, 131, 37, 0", "FLOAT64, 203, 1030, 0",
        // One row block's scratch (5 x 3000 float32) over the limit, X under it: channel_partial_cols.
        "FLOAT32, 4, 3000, 50000", "FLOAT64, 2, 3000, 100000"})
    void matchesTheFloat64Reference(DType type, int rows, int channels, long allocationLimit) {
        try (ClBackend be = ClTestDevices.openWithKernels(device, "serial")) {
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            if (allocationLimit > 0) {
                FaultInjection.limitAllocation(allocationLimit);
            }
            int n = rows * channels;
            SplittableRandom r = new SplittableRandom(31L * rows + channels);
            double[] x = new double[n];
            for (int i = 0; i < n; i++) {
                x[i] = 100 + 3 * r.nextGaussian();
                if (type == DType.FLOAT32) {
                    x[i] = (float) x[i];
                }
            }
            if (channels > 5 && rows > 2) {
                x[2 * channels + 3] = Double.NaN; // channel 3
                x[(rows - 1) * channels + 5] = Double.POSITIVE_INFINITY; // channel 5, last row
            }
            double[] refMean = new double[channels];
            double[] refM2 = new double[channels];
            for (int c = 0; c < channels; c++) {
                double s = 0;
                for (int i = 0; i < rows; i++) {
                    s += x[i * channels + c];
                }
                double mu = s / rows;
                double q = 0;
                for (int i = 0; i < rows; i++) {
                    double d = x[i * channels + c] - mu;
                    q += d * d;
                }
                refMean[c] = mu;
                refM2[c] = q;
            }
            HostTensor host = type == DType.FLOAT64 ? HostTensor.ofDoubles(x, rows, channels)
                    : HostTensor.of(toFloats(x), rows, channels);
            DType st = type.statistics();
            ChannelPlan p = new ChannelPlan(rows, channels, 1, StatMode.MEAN_VAR, 1e-5f);
            try (Buffer xb = be.importHost(host); Buffer mean = be.allocate(st, channels);
                    Buffer m2 = be.allocate(st, channels)) {
                be.channelMoments(p, xb, mean, null, m2);
                String what = type + " " + rows + "x" + channels;
                boolean f64 = type == DType.FLOAT64;
                Tolerance.assertClose(what + " mean", values(be, mean, channels), refMean, f64 ? 0 : 2e-5,
                        f64 ? 1e-12 : 0);
                Tolerance.assertClose(what + " M2", values(be, m2, channels), refM2, f64 ? 1e-9 : 1e-6,
                        f64 ? 1e-12 : 1e-4);
            }
        }
    }

    private static float[] toFloats(double[] x) {
        float[] f = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            f[i] = (float) x[i];
        }
        return f;
    }

    private static double[] values(ClBackend be, Buffer b, int n) {
        HostTensor t = be.read(b, Shape.of(n));
        if (t.dtype() == DType.FLOAT64) {
            return t.doubles();
        }
        float[] f = t.toFloats();
        double[] d = new double[n];
        for (int i = 0; i < n; i++) {
            d[i] = f[i];
        }
        return d;
    }
}
