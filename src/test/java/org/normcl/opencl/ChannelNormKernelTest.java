package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.normcl.testing.TensorBits;

/**
 * The fused batch-norm kernels (channel_norm_serial and, for blocks of channels,
 * channel_norm_blocks: the CPU family's {@code channelNorm}) compute what channel_partial_serial +
 * channel_finalize + channel_apply compute, with the same expressions, so on a given device they
 * give the same bits as those three kernels: Y, the saved
 * statistics, the mean's rounding error and the running update, for every storage type, with and
 * without affine terms, with a NaN and an infinity in some channels. The three-kernel path is
 * checked against float64 references elsewhere (OperatorAccuracyTest, the ONNX vectors), so
 * equality carries those bounds over.
 */
class ChannelNormKernelTest {
    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator();
    }

    @ParameterizedTest(name = "{0} {1}x{2}x{3} affine {4} {5}")
    @CsvSource({"FLOAT32, 5, 16, 333, true, serial", "FLOAT32, 2, 9, 4096, false, serial",
        "FLOAT16, 4, 12, 100, true, serial", "BFLOAT16, 3, 8, 77, true, serial", "FLOAT64, 4, 10, 129, true, serial",
        // channel_norm_blocks: every channel in blocks in this family (on two compute units, blocks of
        // 2 to 25 channels with shorter last ones, and 300 channels in blocks of the most, 32)
        "FLOAT32, 5, 16, 333, true, pipelined", "FLOAT32, 3, 37, 50, false, pipelined",
        "FLOAT32, 2, 100, 40, true, pipelined", "FLOAT32, 2, 300, 20, true, pipelined",
        "FLOAT16, 4, 12, 100, true, pipelined", "BFLOAT16, 3, 8, 77, true, pipelined",
        "FLOAT64, 4, 10, 129, true, pipelined"})
    void fusedKernelEqualsTheThreeKernels(DType type, int outer, int channels, int inner, boolean affine,
            String family) {
        try (ClBackend be = ClTestDevices.openWithKernels(device, family)) { // the families that fuse
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            int n = outer * channels * inner;
            SplittableRandom r = new SplittableRandom(n + channels);
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) (r.nextGaussian() * 3 + 100);
            }
            x[2 * inner + 3] = Float.NaN; // channel 2
            x[(channels + 4) * inner] = Float.NEGATIVE_INFINITY; // channel 4, outer 1
            float[] w = new float[channels];
            for (int c = 0; c < channels; c++) {
                w[c] = 0.5f + c * 0.25f;
            }
            DType st = type.statistics();
            ChannelPlan p = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
            RunningUpdate update = new RunningUpdate(0.1f, true);
            try (Buffer xb = be.importHost(HostTensor.convert(x, type, n));
                    Buffer wb = be.importHost(HostTensor.of(w, channels));
                    Outputs three = new Outputs(be, type, st, n, channels);
                    Outputs fused = new Outputs(be, type, st, n, channels)) {
                Buffer scale = affine ? wb : null;
                be.channelStats(p, xb, three.mean, three.lo, three.inv, update, wb, wb, three.rm, three.rv);
                be.channelApply(p, xb, three.mean, three.lo, three.inv, scale, scale, three.y);
                be.channelNorm(p, xb, fused.mean, fused.lo, fused.inv, update, wb, wb, fused.rm, fused.rv, scale, scale,
                        fused.y);
                String what = type + " " + outer + "x" + channels + "x" + inner;
                three.assertSameBits(be, fused, n, channels, what);
            }
        }
    }

    /**
     * The fused batch-norm backward (channel_backward_fused, and channel_backward_blocks for blocks of
     * channels) against affine_grad_serial + affine_grad_finalize + channel_backward: dX, dScale and
     * dBias, the same bits, in training (dX through the batch sums) and inference (statistics
     * constant).
     */
    @ParameterizedTest(name = "{0} {1}x{2}x{3} training {4} {5}")
    @CsvSource({"FLOAT32, 5, 16, 333, true, serial", "FLOAT32, 3, 9, 1000, false, serial",
        "FLOAT16, 4, 12, 100, true, serial", "FLOAT64, 4, 10, 129, true, serial",
        "FLOAT32, 3, 9, 4096, true, serial",
        // channel_backward_blocks (every channel in blocks in this family; 300 channels: blocks of 32)
        "FLOAT32, 5, 16, 333, true, pipelined", "FLOAT32, 3, 37, 50, false, pipelined",
        "FLOAT32, 2, 300, 20, true, pipelined", "FLOAT16, 4, 12, 100, true, pipelined",
        "FLOAT64, 4, 10, 129, true, pipelined"})
    void fusedBackwardEqualsTheUnfusedKernels(DType type, int outer, int channels, int inner, boolean training,
            String family) {
        try (ClBackend be = ClTestDevices.openWithKernels(device, family)) { // the families that fuse
            assumeTrue(be.supports(type), type + " is not supported by " + device.name());
            int n = outer * channels * inner;
            SplittableRandom r = new SplittableRandom(n + 3L * channels);
            float[] x = new float[n];
            float[] dy = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) (r.nextGaussian() * 3 + 100);
                dy[i] = (float) r.nextGaussian();
            }
            float[] w = new float[channels];
            for (int c = 0; c < channels; c++) {
                w[c] = 0.5f + c * 0.25f;
            }
            DType st = type.statistics();
            ChannelPlan p = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
            try (Buffer xb = be.importHost(HostTensor.convert(x, type, n));
                    Buffer dyb = be.importHost(HostTensor.convert(dy, type, n));
                    Buffer wb = be.importHost(HostTensor.of(w, channels));
                    Buffer mean = be.allocate(st, channels);
                    Buffer inv = be.allocate(st, channels);
                    Buffer sums = be.allocate(st, 2L * channels);
                    Buffer dx1 = be.allocate(type, n);
                    Buffer dx2 = be.allocate(type, n);
                    Buffer ds1 = be.allocate(DType.FLOAT32, channels);
                    Buffer ds2 = be.allocate(DType.FLOAT32, channels);
                    Buffer db1 = be.allocate(DType.FLOAT32, channels);
                    Buffer db2 = be.allocate(DType.FLOAT32, channels)) {
                be.channelStats(p, xb, mean, null, inv, null, null, null, null, null);
                be.affineGrad(new AffineGradPlan(outer, channels, inner, 0, 1, false), dyb, xb, mean, inv, ds1, db1,
                        training ? sums : null);
                be.channelBackward(p, p.perChannel(), dyb, xb, mean, inv, wb, training ? sums : null, dx1);
                be.channelBackwardWithGrad(p, training, dyb, xb, mean, inv, wb, ds2, db2, dx2);
                String what = type + " " + outer + "x" + channels + "x" + inner + " training " + training;
                Shape all = Shape.of(n);
                Shape per = Shape.of(channels);
                assertArrayEquals(TensorBits.of(be.read(dx1, all)), TensorBits.of(be.read(dx2, all)), what + " dX");
                assertArrayEquals(TensorBits.of(be.read(ds1, per)), TensorBits.of(be.read(ds2, per)), what + " dScale");
                assertArrayEquals(TensorBits.of(be.read(db1, per)), TensorBits.of(be.read(db2, per)), what + " dBias");
            }
        }
    }

    /** The outputs of one batch-norm forward on the device. */
    private static final class Outputs implements AutoCloseable {
        final Buffer y;
        final Buffer mean;
        final Buffer lo;
        final Buffer inv;
        final Buffer rm;
        final Buffer rv;

        Outputs(ClBackend be, DType type, DType st, long n, long channels) {
            y = be.allocate(type, n);
            mean = be.allocate(st, channels);
            lo = be.allocate(st, channels);
            inv = be.allocate(st, channels);
            rm = be.allocate(DType.FLOAT32, channels);
            rv = be.allocate(DType.FLOAT32, channels);
        }

        void assertSameBits(ClBackend be, Outputs o, long n, long channels, String what) {
            String[] names = {"Y", "mean", "mean rounding error", "invStd", "running mean", "running var"};
            Buffer[] mine = {y, mean, lo, inv, rm, rv};
            Buffer[] theirs = {o.y, o.mean, o.lo, o.inv, o.rm, o.rv};
            for (int i = 0; i < mine.length; i++) {
                Shape s = Shape.of(i == 0 ? n : channels);
                assertArrayEquals(TensorBits.of(be.read(mine[i], s)), TensorBits.of(be.read(theirs[i], s)),
                        what + " " + names[i]);
            }
        }

        @Override
        public void close() {
            for (Buffer b : new Buffer[] {y, mean, lo, inv, rm, rv}) {
                b.close();
            }
        }
    }
}
