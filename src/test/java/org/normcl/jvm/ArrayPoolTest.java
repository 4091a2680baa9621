package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DType;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.HalfFloats;
import org.normcl.HostTensor;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.Shape;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.normcl.reference.Reference64;
import org.normcl.testing.Data;

/**
 * The Java backend reuses the arrays of closed buffers it allocated, and never an array that left
 * it: an imported host tensor's, or one handed to the caller as a result. Results computed in
 * reused arrays are those of fresh ones.
 */
class ArrayPoolTest {
    private static final int N = 1 << 18; // 1 MiB of floats

    @Test
    void aClosedBuffersArrayIsReusedBySameTypeAndLength() {
        try (JavaBackend be = new JavaBackend(1)) {
            JavaBuffer a = (JavaBuffer) be.allocate(DType.FLOAT32, N);
            Object array = a.array();
            a.close();
            try (JavaBuffer b = (JavaBuffer) be.allocate(DType.FLOAT32, N);
                    JavaBuffer c = (JavaBuffer) be.allocate(DType.FLOAT32, N)) {
                assertSame(array, b.array(), "the same length and type takes the kept array");
                assertNotSame(array, c.array(), "once");
            }
            try (JavaBuffer d = (JavaBuffer) be.allocate(DType.FLOAT16, 2 * N)) {
                assertNotSame(array, d.array(), "another type never does");
            }
        }
    }

    @Test
    void arraysThatLeftTheBackendAreNeverReused() {
        try (JavaBackend be = new JavaBackend(1)) {
            float[] mine = new float[N];
            be.importHost(HostTensor.of(mine, N)).close();
            try (JavaBuffer b = (JavaBuffer) be.allocate(DType.FLOAT32, N)) {
                assertNotSame(mine, b.array(), "an imported host array stays the caller's");
            }
            JavaBuffer out = (JavaBuffer) be.allocate(DType.FLOAT32, N);
            HostTensor handedOut = be.exportHost(out, Shape.of(N));
            out.close();
            try (JavaBuffer b = (JavaBuffer) be.allocate(DType.FLOAT32, N)) {
                assertNotSame(handedOut.array(), b.array(), "an exported array belongs to the caller");
            }
        }
    }

    @Test
    void keepsAtMostItsCapOldestDroppedFirstAndNothingSmall() {
        ArrayPool pool = new ArrayPool(3L * 4 * N);
        float[][] arrays = new float[4][N];
        for (float[] a : arrays) {
            pool.give(DType.FLOAT32, a, N);
        }
        assertEquals(3L * 4 * N, pool.bytes());
        assertSame(arrays[3], pool.take(DType.FLOAT32, N), "the newest first");
        assertSame(arrays[2], pool.take(DType.FLOAT32, N));
        assertSame(arrays[1], pool.take(DType.FLOAT32, N));
        assertNull(pool.take(DType.FLOAT32, N), "the oldest was dropped");
        pool.give(DType.FLOAT32, new float[16], 16);
        assertEquals(0, pool.bytes(), "small arrays are left to the allocator");
    }

    /**
     * Through the engine on device tensors (outputs reused from closed results) and host tensors
     * (results handed out): every result matches the float64 layer norm of its own input, and a
     * host result is unchanged by the calls after it.
     */
    @Test
    void resultsInReusedArraysAreRightAndHandedOutResultsStayPut() {
        int rows = 512;
        int cols = 1024;
        try (NormEngine e = NormEngine.create(EngineOptions.java())) {
            HostTensor first = null;
            float[] firstCopy = null;
            for (int i = 0; i < 4; i++) {
                float[] x = Data.gaussian("pool " + i, rows * cols, i, 1 + i);
                HostTensor xh = HostTensor.of(x, rows, cols);
                double[] ref = Reference64.layerNorm(x, new long[] {rows, cols}, -1, 1e-5f, null, null).y();
                try (DeviceTensor xd = e.upload(xh); NormResult r = e.layerNorm(xd, null, null)) {
                    assertClose(ref, ((DeviceTensor) r.y()).toHost().data(), "device result " + i);
                }
                NormResult hr = e.layerNorm(xh, null, null);
                HostTensor y = (HostTensor) hr.y();
                assertClose(ref, y.data(), "host result " + i);
                if (first == null) {
                    first = y;
                    firstCopy = y.data().clone();
                }
            }
            assertArrayEquals(firstCopy, first.data(), "a host result is not overwritten by later calls");
        }
    }

    /**
     * 16-bit data is widened into float32 copies that the backend keeps for the next call, a block
     * of rows at a time: calls on different data in one backend give each input's own layer norm
     * (against float64 of the decoded input, within the 16-bit format's rounding) and the bits of a
     * fresh backend that converts whole tensors, on shapes whose last block is full and partial.
     */
    @ParameterizedTest(name = "{0}x{1}")
    @CsvSource({"64, 4096", "37, 1000", "3, 70000"})
    void sixteenBitCallsInReusedCopiesMatchAFreshBackend(int rows, int cols) {
        RowNormPlan p = RowNormPlan.contiguous(rows, cols, StatMode.MEAN_VAR, 1e-5f, 1, cols, 1, true, true);
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            float[] scale = Data.gaussian("scale", cols, 1, 0.1);
            float[] bias = Data.gaussian("bias", cols, 0, 0.1);
            try (JavaBackend be = new JavaBackend(2)) {
                for (int call = 0; call < 3; call++) {
                    float[] x = Data.gaussian(dtype + " input " + call % 2, rows * cols, call, 1 + call);
                    short[] got = sixteenBitLayerNorm(be, p, dtype, x, scale, bias);
                    short[] fresh;
                    try (JavaBackend other = new JavaBackend(2, false)) {
                        fresh = sixteenBitLayerNorm(other, p, dtype, x, scale, bias);
                    }
                    String what = dtype + " call " + call;
                    assertArrayEquals(fresh, got, what + ": the bits of a fresh backend converting whole tensors");
                    float[] decoded = decode(dtype, encode(dtype, x));
                    double[] ref = Reference64.layerNorm(decoded, new long[] {rows, cols}, -1, 1e-5f,
                            decode(dtype, encode(dtype, scale)), decode(dtype, encode(dtype, bias))).y();
                    float[] y = decode(dtype, got);
                    // One rounding to the 16-bit format (half an ulp: 2^-11 relative for float16,
                    // 2^-8 for bfloat16) on top of float32 arithmetic.
                    double ulp = dtype == DType.FLOAT16 ? 0x1p-11 : 0x1p-8;
                    for (int i = 0; i < y.length; i++) {
                        assertEquals(ref[i], y[i], ulp * Math.abs(ref[i]) + 1e-5, what + " element " + i);
                    }
                }
            }
        }
    }

    /**
     * The 16-bit layer and RMS norm backward a block of rows at a time: dX, with the parameter
     * gradients or alone, is that of a backend that converts whole tensors, bit for bit; dScale and dBias are the same bits on 1 and 3 threads and
     * within float32 accumulation of the float64 sums over the decoded inputs (the float32 terms
     * add over 16 rows before they go into double: 64 float ulps of the sum of |terms| bounds both
     * paths), on shapes of one block, several, partial ones, and rows longer than a block.
     */
    @ParameterizedTest(name = "{0}x{1}")
    @CsvSource({"64, 4096", "37, 1000", "3, 70000", "300, 128", "400, 3000"})
    void sixteenBitBackwardInBlocksMatchesWholeTensors(int rows, int cols) {
        for (boolean rms : new boolean[] {false, true}) {
            RowNormPlan p = RowNormPlan.contiguous(rows, cols, rms ? StatMode.RMS : StatMode.MEAN_VAR, 1e-5f, 1,
                    cols, 1, true, !rms);
            AffineGradPlan g = new AffineGradPlan(rows, cols, 1, 1, cols, rms);
            for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
                String what = dtype + (rms ? " rms" : " layer") + " " + rows + "x" + cols;
                float[] x = decode(dtype, encode(dtype, Data.gaussian(what + " x", rows * cols, 0.5, 2)));
                float[] dy = decode(dtype, encode(dtype, Data.gaussian(what + " dy", rows * cols, 0, 1)));
                float[] scale = Data.gaussian(what + " scale", cols, 1, 0.1);
                float[] mean = Data.gaussian(what + " mean", rows, 0.5, 0.01);
                float[] inv = Data.gaussian(what + " inv", rows, 0.5, 0.01);
                Object[][] runs = blocksAgainstWhole(p, g, dtype, dy, x, scale, mean, inv, what);
                Object[] blocks3 = runs[0];
                Object[] whole = runs[1];
                for (int c = 0; c < cols; c++) {
                    double s = 0;
                    double b = 0;
                    double sAbs = 0;
                    double bAbs = 0;
                    for (int r = 0; r < rows; r++) {
                        int i = r * cols + c;
                        double term = (double) dy[i] * ((x[i] - (rms ? 0.0 : mean[r])) * (double) inv[r]);
                        s += term;
                        b += dy[i];
                        sAbs += Math.abs(term);
                        bAbs += Math.abs(dy[i]);
                    }
                    for (Object[] got : new Object[][] {blocks3, whole}) {
                        assertEquals(s, ((float[]) got[1])[c], 64 * 0x1p-24 * sAbs + 1e-30, what + " dScale[" + c + "]");
                        assertEquals(b, ((float[]) got[2])[c], 64 * 0x1p-24 * bAbs + 1e-30, what + " dBias[" + c + "]");
                    }
                }
            }
        }
    }

    /**
     * The same for channels-first group and instance norm (N, C, spatial, G groups; the blocks are
     * whole samples at least) and for group and instance norm of (N, C) data (spatial 1: the
     * parameter-gradient terms go on across blocks): dX with and without the parameter gradients is
     * that of whole tensors bit for bit, dScale and dBias the same bits on 1 and 3 threads and within
     * float32 run sums ({@link RowKernels#RUN} terms in float32, then double) of the float64 sums per
     * channel.
     */
    @ParameterizedTest(name = "{0}x{1}x{2} groups {3}")
    @CsvSource({"3, 8, 300, 4", "2, 6, 4096, 6", "40, 4, 70, 2", "70, 64, 1, 8", "21, 40000, 1, 2", "50, 16, 1, 16",
        "600, 3000, 1, 3"})
    void sixteenBitGroupNormBackwardInBlocksMatchesWholeTensors(int outer, int channels, int spatial, int groups) {
        int cpg = channels / groups;
        RowNormPlan p = RowNormPlan.contiguous((long) outer * groups, (long) cpg * spatial, StatMode.MEAN_VAR, 1e-5f,
                groups, cpg, spatial, true, true);
        AffineGradPlan g = new AffineGradPlan(outer, channels, spatial, groups, cpg, false);
        int n = outer * channels * spatial;
        int rows = outer * groups;
        int cols = cpg * spatial;
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            String what = dtype + " group " + outer + "x" + channels + "x" + spatial + "/" + groups;
            float[] x = decode(dtype, encode(dtype, Data.gaussian(what + " x", n, 0.5, 2)));
            float[] dy = decode(dtype, encode(dtype, Data.gaussian(what + " dy", n, 0, 1)));
            float[] scale = Data.gaussian(what + " scale", channels, 1, 0.1);
            float[] mean = Data.gaussian(what + " mean", rows, 0.5, 0.01);
            float[] inv = Data.gaussian(what + " inv", rows, 0.5, 0.01);
            Object[][] runs = blocksAgainstWhole(p, g, dtype, dy, x, scale, mean, inv, what);
            Object[] blocks3 = runs[0];
            Object[] whole = runs[1];
            double[] s = new double[channels];
            double[] b = new double[channels];
            double[] sAbs = new double[channels];
            double[] bAbs = new double[channels];
            for (int i = 0; i < n; i++) {
                int r = i / cols;
                int c = (r % groups) * cpg + (i % cols) / spatial;
                double term = (double) dy[i] * ((x[i] - (double) mean[r]) * inv[r]);
                s[c] += term;
                b[c] += dy[i];
                sAbs[c] += Math.abs(term);
                bAbs[c] += Math.abs(dy[i]);
            }
            // (N, C) data (spatial 1): float32 terms over 16 outer indices, then double, as the layer-norm
            // test bounds them; channels-first: float32 runs of up to RUN values.
            double runBound = (spatial == 1 ? 64 : RowKernels.RUN) * 0x1p-24;
            for (int c = 0; c < channels; c++) {
                for (Object[] r : new Object[][] {blocks3, whole}) {
                    assertEquals(s[c], ((float[]) r[1])[c], runBound * sAbs[c] + 1e-30, what + " dScale[" + c + "]");
                    assertEquals(b[c], ((float[]) r[2])[c], runBound * bAbs[c] + 1e-30, what + " dBias[" + c + "]");
                }
            }
        }
    }

    /**
     * 16-bit batch-norm backward a channel at a time, training and inference: dX, dScale and dBias
     * are the bits of a backend that converts whole tensors, on 1 and 2 threads; dScale and dBias
     * within float32 run sums (at most {@link RowKernels#RUN} terms in float32, then double) of the
     * float64 sums over the decoded inputs, and dX within the format's rounding (plus float32
     * arithmetic) of the float64 formula from those sums.
     */
    @ParameterizedTest(name = "{0}x{1}x{2}")
    @CsvSource({"4, 8, 300", "3, 16, 4096", "2, 12, 1000"})
    void sixteenBitBatchNormBackwardInChannelBlocksMatchesWholeTensors(int outer, int channels, int inner) {
        ChannelPlan p = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
        int n = outer * channels * inner;
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            for (boolean training : new boolean[] {true, false}) {
                String what = dtype + (training ? " training " : " inference ") + outer + "x" + channels + "x" + inner;
                float[] x = decode(dtype, encode(dtype, Data.gaussian(what + " x", n, 0.5, 2)));
                float[] dy = decode(dtype, encode(dtype, Data.gaussian(what + " dy", n, 0, 1)));
                float[] scale = Data.gaussian(what + " scale", channels, 1, 0.1);
                float[] mean = Data.gaussian(what + " mean", channels, 0.5, 0.01);
                float[] inv = Data.gaussian(what + " inv", channels, 0.5, 0.01);
                Object[] whole = batchBackward16(new JavaBackend(2, false), p, training, dtype, dy, x, scale, mean,
                        inv);
                for (int threads : new int[] {1, 2}) {
                    Object[] blocks = batchBackward16(new JavaBackend(threads), p, training, dtype, dy, x, scale, mean,
                            inv);
                    assertArrayEquals((short[]) whole[0], (short[]) blocks[0], what + ": dX, " + threads);
                    assertArrayEquals((float[]) whole[1], (float[]) blocks[1], what + ": dScale, " + threads);
                    assertArrayEquals((float[]) whole[2], (float[]) blocks[2], what + ": dBias, " + threads);
                }
                float[] dx = decode(dtype, (short[]) whole[0]);
                double ulp = dtype == DType.FLOAT16 ? 0x1p-11 : 0x1p-8;
                for (int c = 0; c < channels; c++) {
                    double s = 0;
                    double b = 0;
                    double sAbs = 0;
                    double bAbs = 0;
                    for (int o = 0; o < outer; o++) {
                        for (int i = (o * channels + c) * inner; i < (o * channels + c + 1) * inner; i++) {
                            double term = dy[i] * ((x[i] - (double) mean[c]) * inv[c]);
                            s += term;
                            b += dy[i];
                            sAbs += Math.abs(term);
                            bAbs += Math.abs(dy[i]);
                        }
                    }
                    double runBound = RowKernels.RUN * 0x1p-24;
                    assertEquals(s, ((float[]) whole[1])[c], runBound * sAbs + 1e-30, what + " dScale[" + c + "]");
                    assertEquals(b, ((float[]) whole[2])[c], runBound * bAbs + 1e-30, what + " dBias[" + c + "]");
                    double k = (double) scale[c] * inv[c];
                    double m = (double) outer * inner;
                    for (int o = 0; o < outer; o++) {
                        for (int i = (o * channels + c) * inner; i < (o * channels + c + 1) * inner; i++) {
                            double xhat = (x[i] - (double) mean[c]) * inv[c];
                            double ref = training ? k * (dy[i] - b / m - xhat * (s / m)) : k * dy[i];
                            double scaleOfTerms = Math.abs(k) * (Math.abs(dy[i]) + Math.abs(xhat * s / m) + 1);
                            assertEquals(ref, dx[i], ulp * Math.abs(ref) + 1e-5 * scaleOfTerms, what + " dx " + i);
                        }
                    }
                }
            }
        }
    }

    /** @return dX (16-bit), dScale and dBias (float32) of one batch-norm backward call; closes the backend */
    private static Object[] batchBackward16(JavaBackend backend, ChannelPlan p, boolean training, DType dtype,
            float[] dy, float[] x, float[] scale, float[] mean, float[] inv) {
        int c = (int) p.channels();
        try (JavaBackend be = backend;
                Buffer dyb = sixteenBit(be, dtype, encode(dtype, dy));
                Buffer xb = sixteenBit(be, dtype, encode(dtype, x));
                Buffer sb = floats(be, scale);
                Buffer mb = floats(be, mean);
                Buffer ib = floats(be, inv);
                Buffer dxb = be.allocate(dtype, x.length);
                Buffer dsb = be.allocate(DType.FLOAT32, c);
                Buffer dbb = be.allocate(DType.FLOAT32, c)) {
            be.channelBackwardWithGrad(p, training, dyb, xb, mb, ib, sb, dsb, dbb, dxb);
            return new Object[] {((short[]) ((JavaBuffer) dxb).array()).clone(), array(dsb), array(dbb)};
        }
    }

    /**
     * Runs the backward in blocks on 3 and 1 threads and on a backend converting whole tensors, and
     * asserts dX (with and without the parameter gradients) equal to whole tensors' and the
     * parameter gradients equal on 1 and 3 threads, bit for bit.
     *
     * @return the results on 3 threads and of whole tensors
     */
    private static Object[][] blocksAgainstWhole(RowNormPlan p, AffineGradPlan g, DType dtype, float[] dy, float[] x,
            float[] scale, float[] mean, float[] inv, String what) {
        Object[] blocks3 = backward(new JavaBackend(3), p, g, dtype, dy, x, scale, mean, inv);
        Object[] blocks1 = backward(new JavaBackend(1), p, g, dtype, dy, x, scale, mean, inv);
        Object[] whole = backward(new JavaBackend(2, false), p, g, dtype, dy, x, scale, mean, inv);
        assertArrayEquals((short[]) whole[0], (short[]) blocks3[0], what + ": dX of whole tensors");
        assertArrayEquals((short[]) whole[0],
                (short[]) backward(new JavaBackend(2), p, null, dtype, dy, x, scale, mean, inv)[0],
                what + ": dX alone (no parameter gradients) in blocks, against whole tensors");
        assertArrayEquals((float[]) blocks1[1], (float[]) blocks3[1], what + ": dScale on 1 and 3 threads");
        assertArrayEquals((float[]) blocks1[2], (float[]) blocks3[2], what + ": dBias on 1 and 3 threads");
        return new Object[][] {blocks3, whole};
    }

    /**
     * @return dX (16-bit), dScale and dBias (float32) of one backward call, or dX alone (the others
     *     zero) when {@code g} is null; closes the backend
     */
    private static Object[] backward(JavaBackend be, RowNormPlan p, AffineGradPlan g, DType dtype, float[] dy,
            float[] x, float[] scale, float[] mean, float[] inv) {
        int rows = (int) p.rows();
        int cols = (int) p.cols();
        try (be;
                Buffer dyb = sixteenBit(be, dtype, encode(dtype, dy));
                Buffer xb = sixteenBit(be, dtype, encode(dtype, x));
                Buffer sb = floats(be, scale);
                Buffer mb = floats(be, mean);
                Buffer ib = floats(be, inv);
                Buffer dxb = be.allocate(dtype, (long) rows * cols);
                Buffer dsb = be.allocate(DType.FLOAT32, scale.length);
                Buffer dbb = be.allocate(DType.FLOAT32, scale.length)) {
            if (g == null) {
                be.rowNormBackward(p, dyb, xb, sb, mb, ib, dxb);
            } else {
                be.rowNormBackwardWithGrad(p, g, dyb, xb, sb, mb, ib, dxb, dsb, dbb);
            }
            return new Object[] {((short[]) ((JavaBuffer) dxb).array()).clone(),
                ((float[]) ((JavaBuffer) dsb).array()).clone(), ((float[]) ((JavaBuffer) dbb).array()).clone()};
        }
    }

    private static Buffer floats(JavaBackend be, float[] v) {
        Buffer b = be.allocate(DType.FLOAT32, v.length);
        System.arraycopy(v, 0, (float[]) ((JavaBuffer) b).array(), 0, v.length);
        return b;
    }

    /**
     * 16-bit batch norm (training, with running statistics) a channel at a time: Y, the saved
     * statistics and the running ones are those of a backend that converts whole tensors, bit for
     * bit, on 1 and 2 threads; Y is within the 16-bit format's rounding of float64 batch norm of the
     * decoded input, the statistics within float32 rounding.
     */
    @ParameterizedTest(name = "{0}x{1}x{2}")
    @CsvSource({"4, 8, 300", "3, 16, 4096", "2, 12, 1000"})
    void sixteenBitBatchNormInChannelBlocksMatchesWholeTensors(int outer, int channels, int inner) {
        ChannelPlan p = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
        int n = outer * channels * inner;
        for (DType dtype : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            float[] x = Data.gaussian(dtype + " bn x", n, 3, 2);
            float[] scale = Data.gaussian("bn scale", channels, 1, 0.1);
            float[] bias = Data.gaussian("bn bias", channels, 0, 0.1);
            float[] rm = Data.gaussian("bn running mean", channels, 0, 1);
            float[] rv = Data.uniform("bn running var", channels, 0.5, 2);
            String what = dtype + " " + outer + "x" + channels + "x" + inner;
            Object[] whole = batchNorm16(new JavaBackend(2, false), p, dtype, x, scale, bias, rm, rv);
            for (int threads : new int[] {1, 2}) {
                Object[] blocks = batchNorm16(new JavaBackend(threads), p, dtype, x, scale, bias, rm, rv);
                assertArrayEquals((short[]) whole[0], (short[]) blocks[0], what + ": Y of whole tensors, " + threads);
                for (int i = 1; i < whole.length; i++) {
                    assertArrayEquals((float[]) whole[i], (float[]) blocks[i], what + ": output " + i + ", " + threads);
                }
            }
            Reference64.BatchNormTraining ref = Reference64.batchNormTraining(decode(dtype, encode(dtype, x)),
                    new long[] {outer, channels, inner}, decode(dtype, encode(dtype, scale)),
                    decode(dtype, encode(dtype, bias)), rm, rv, 1e-5f, 0.1f, true);
            float[] y = decode(dtype, (short[]) whole[0]);
            double ulp = dtype == DType.FLOAT16 ? 0x1p-11 : 0x1p-8; // one rounding to the format
            for (int i = 0; i < n; i++) {
                assertEquals(ref.y()[i], y[i], ulp * Math.abs(ref.y()[i]) + 1e-5, what + " y " + i);
            }
            for (int c = 0; c < channels; c++) {
                assertEquals(ref.mean()[c], ((float[]) whole[1])[c], 1e-5 * (1 + Math.abs(ref.mean()[c])), what);
                assertEquals(ref.invStd()[c], ((float[]) whole[2])[c], 1e-5 * ref.invStd()[c], what);
                assertEquals(ref.newRunningMean()[c], ((float[]) whole[3])[c], 1e-5, what);
                assertEquals(ref.newRunningVar()[c], ((float[]) whole[4])[c], 1e-5 * ref.newRunningVar()[c], what);
            }
        }
    }

    /** @return Y's bits, then mean, inverse std, running mean and running var (float32) */
    private static Object[] batchNorm16(JavaBackend backend, ChannelPlan p, DType dtype, float[] x, float[] scale,
            float[] bias, float[] rm, float[] rv) {
        int c = (int) p.channels();
        try (JavaBackend be = backend;
                Buffer xb = sixteenBit(be, dtype, encode(dtype, x));
                Buffer sb = sixteenBit(be, dtype, encode(dtype, scale));
                Buffer bb = sixteenBit(be, dtype, encode(dtype, bias));
                Buffer rmb = floats(be, rm);
                Buffer rvb = floats(be, rv);
                Buffer yb = be.allocate(dtype, x.length);
                Buffer mean = be.allocate(DType.FLOAT32, c);
                Buffer inv = be.allocate(DType.FLOAT32, c);
                Buffer rmOut = be.allocate(DType.FLOAT32, c);
                Buffer rvOut = be.allocate(DType.FLOAT32, c)) {
            be.channelNorm(p, xb, mean, null, inv, new RunningUpdate(0.1f, true), rmb, rvb, rmOut, rvOut, sb, bb, yb);
            return new Object[] {((short[]) ((JavaBuffer) yb).array()).clone(), array(mean), array(inv), array(rmOut),
                array(rvOut)};
        }
    }

    private static float[] array(Buffer b) {
        return ((float[]) ((JavaBuffer) b).array()).clone();
    }

    private static short[] sixteenBitLayerNorm(JavaBackend be, RowNormPlan p, DType dtype, float[] x, float[] scale,
            float[] bias) {
        int rows = (int) p.rows();
        try (Buffer xb = sixteenBit(be, dtype, encode(dtype, x));
                Buffer sb = sixteenBit(be, dtype, encode(dtype, scale));
                Buffer bb = sixteenBit(be, dtype, encode(dtype, bias));
                Buffer yb = be.allocate(dtype, x.length);
                Buffer mean = be.allocate(DType.FLOAT32, rows);
                Buffer inv = be.allocate(DType.FLOAT32, rows)) {
            be.rowNorm(p, xb, sb, bb, yb, mean, inv);
            return ((short[]) ((JavaBuffer) yb).array()).clone();
        }
    }

    private static Buffer sixteenBit(JavaBackend be, DType dtype, short[] bits) {
        Buffer b = be.allocate(dtype, bits.length);
        System.arraycopy(bits, 0, (short[]) ((JavaBuffer) b).array(), 0, bits.length);
        return b;
    }

    private static short[] encode(DType dtype, float[] v) {
        short[] bits = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            bits[i] = dtype == DType.FLOAT16 ? HalfFloats.floatToHalf(v[i]) : HalfFloats.floatToBfloat16(v[i]);
        }
        return bits;
    }

    private static float[] decode(DType dtype, short[] bits) {
        float[] v = new float[bits.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = dtype == DType.FLOAT16 ? HalfFloats.halfToFloat(bits[i]) : HalfFloats.bfloat16ToFloat(bits[i]);
        }
        return v;
    }

    private static void assertClose(double[] ref, float[] got, String what) {
        assertEquals(ref.length, got.length, what);
        for (int i = 0; i < ref.length; i++) {
            // float32 layer norm of unit-scale rows of 1024: a few ulps of |y| <= ~5 (Tolerances gives the derivation)
            assertEquals(ref[i], got[i], 1e-4, what + " element " + i);
        }
    }
}
