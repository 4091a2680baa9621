package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.testing.SystemProperties;

/**
 * Host-array transfers, both ways: every element comes back with the same bits (NaN payloads,
 * signed zeros and subnormals included) for sizes around the staging chunk, for every dtype, and an
 * operator run through staged transfers gives the same bits as through direct ones. The mode is
 * chosen per device as documented.
 */
class HostTransfersTest {
    /** 16 floats per staging half, so small arrays cross several chunks and both halves. */
    private static final int SMALL_CHUNK = 64;

    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator();
    }

    @ParameterizedTest
    @EnumSource(HostTransfers.Mode.class)
    void everyElementRoundTripsBitForBit(HostTransfers.Mode mode) {
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), mode, SMALL_CHUNK)) {
            assertEquals(mode, be.transferMode());
            for (DType type : DType.values()) {
                if (!be.supports(type)) {
                    continue;
                }
                int perChunk = SMALL_CHUNK / type.byteSize();
                for (int n : new int[] {1, perChunk - 1, perChunk, perChunk + 1, 2 * perChunk, 3 * perChunk + 5, 1000}) {
                    HostTensor sent = tensor(type, n, n * 31L + type.ordinal());
                    try (Buffer b = be.allocate(type, n)) {
                        be.write(b, sent);
                        HostTensor back = be.read(b, sent.shape());
                        assertBitsEqual(sent, back, mode + " " + type + " n=" + n);
                    }
                }
            }
        }
    }

    @Test
    void stagedTransfersOfSeveralDefaultChunksRoundTrip() {
        int n = (int) (2.5 * HostTransfers.CHUNK_BYTES / Float.BYTES) + 3;
        HostTensor sent = tensor(DType.FLOAT32, n, 7);
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), HostTransfers.Mode.STAGED,
                HostTransfers.CHUNK_BYTES); Buffer b = be.allocate(DType.FLOAT32, n)) {
            be.write(b, sent);
            assertBitsEqual(sent, be.read(b, sent.shape()), "10 MiB staged");
        }
    }

    @Test
    void layerNormThroughStagedTransfersEqualsDirect() {
        int rows = 37;
        int cols = 129;
        SplittableRandom r = new SplittableRandom(11);
        float[] xs = new float[rows * cols];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = (float) (r.nextGaussian() * 3 + 5);
        }
        HostTensor x = HostTensor.of(xs, rows, cols);
        float[] direct = layerNorm(HostTransfers.Mode.DIRECT, x, rows, cols);
        float[] staged = layerNorm(HostTransfers.Mode.STAGED, x, rows, cols);
        assertArrayEquals(direct, staged);
        // An independent check that the data reached the kernel: row 0 has mean 0 and unit variance.
        double mean = 0;
        double sq = 0;
        for (int i = 0; i < cols; i++) {
            mean += staged[i];
            sq += (double) staged[i] * staged[i];
        }
        assertEquals(0, mean / cols, 1e-5, "row 0 mean");
        assertEquals(1, sq / cols, 1e-3, "row 0 variance (epsilon 1e-5 against a variance of 9)");
    }

    @Test
    void modeIsChosenPerDevice() {
        assertEquals(HostTransfers.Mode.DIRECT, HostTransfers.choose(withType(device, "CPU"), false));
        assertEquals(HostTransfers.Mode.STAGED, HostTransfers.choose(withType(device, "GPU"), false),
                "a discrete GPU stages through pinned memory");
        assertEquals(HostTransfers.Mode.DIRECT, HostTransfers.choose(withType(device, "GPU"), true),
                "an integrated GPU shares host memory");
        assertEquals(HostTransfers.Mode.DIRECT, HostTransfers.choose(like(device, "Oclgrind", "GPU"), false),
                "the simulator reports a GPU without unified memory, but gets direct transfers");
        try (SystemProperties p = SystemProperties.set(HostTransfers.PROPERTY, "staged")) {
            assertEquals(HostTransfers.Mode.STAGED, HostTransfers.choose(withType(device, "CPU"), true));
            System.setProperty(HostTransfers.PROPERTY, "pinned");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> HostTransfers.choose(device, false));
            assertTrue(e.getMessage().contains("normcl.transfers") && e.getMessage().contains("auto, direct or staged"),
                    e.getMessage());
        }
    }

    private float[] layerNorm(HostTransfers.Mode mode, HostTensor x, int rows, int cols) {
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), mode, SMALL_CHUNK);
                Buffer xb = be.allocate(DType.FLOAT32, (long) rows * cols);
                Buffer yb = be.allocate(DType.FLOAT32, (long) rows * cols)) {
            be.write(xb, x);
            RowNormPlan plan = RowNormPlan.contiguous(rows, cols, StatMode.MEAN_VAR, 1e-5f, 1, 1, cols, false, false);
            be.rowNorm(plan, xb, null, null, yb, null, null);
            return (float[]) be.read(yb, x.shape()).array();
        }
    }

    /** Values with NaN payloads, signed zeros, subnormals and infinities among ordinary ones. */
    private static HostTensor tensor(DType type, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Shape shape = Shape.of(n);
        switch (type) {
            case FLOAT64: {
                double[] d = new double[n];
                for (int i = 0; i < n; i++) {
                    d[i] = switch (i % 7) {
                        case 0 -> Double.longBitsToDouble(0x7ff8_0000_0000_1234L);
                        case 1 -> -0.0;
                        case 2 -> Double.MIN_VALUE * (i + 1);
                        case 3 -> Double.NEGATIVE_INFINITY;
                        default -> r.nextGaussian() * 1e3;
                    };
                }
                return HostTensor.ofDoubles(d, n);
            }
            case FLOAT32: {
                float[] f = new float[n];
                for (int i = 0; i < n; i++) {
                    f[i] = switch (i % 7) {
                        case 0 -> Float.intBitsToFloat(0x7fc0_1234);
                        case 1 -> -0.0f;
                        case 2 -> Float.MIN_VALUE * (i + 1);
                        case 3 -> Float.POSITIVE_INFINITY;
                        default -> (float) (r.nextGaussian() * 1e3);
                    };
                }
                return HostTensor.of(f, shape);
            }
            default: {
                short[] bits = new short[n];
                for (int i = 0; i < n; i++) {
                    bits[i] = (short) r.nextInt(1 << 16);
                }
                return HostTensor.ofBits(bits, type, n);
            }
        }
    }

    private static void assertBitsEqual(HostTensor sent, HostTensor back, String what) {
        Object a = sent.array();
        Object b = back.array();
        if (a instanceof float[] f) {
            float[] g = (float[]) b;
            assertEquals(f.length, g.length, what);
            for (int i = 0; i < f.length; i++) {
                assertEquals(Float.floatToRawIntBits(f[i]), Float.floatToRawIntBits(g[i]), what + " element " + i);
            }
        } else if (a instanceof double[] d) {
            double[] e = (double[]) b;
            assertEquals(d.length, e.length, what);
            for (int i = 0; i < d.length; i++) {
                assertEquals(Double.doubleToRawLongBits(d[i]), Double.doubleToRawLongBits(e[i]), what + " element " + i);
            }
        } else {
            assertArrayEquals((short[]) a, (short[]) b, what);
        }
    }

    private static DeviceInfo withType(DeviceInfo d, String type) {
        return like(d, d.platformName(), type);
    }

    /** @return the device as if it were of this platform and type */
    private static DeviceInfo like(DeviceInfo d, String platform, String type) {
        return new DeviceInfo(d.index(), platform, d.platformVendor(), d.platformVersion(), d.name(),
                d.vendor(), type, d.deviceVersion(), d.driverVersion(), d.openclCVersion(), d.computeUnits(),
                d.maxClockMHz(), d.globalMemBytes(), d.localMemBytes(), d.maxAllocBytes(), d.maxWorkGroupSize(),
                d.extensions(), d.fp16(), d.fp64(), d.preferredVectorWidthFloat(), d.preferredVectorWidthHalf(),
                d.preferredVectorWidthDouble());
    }
}
