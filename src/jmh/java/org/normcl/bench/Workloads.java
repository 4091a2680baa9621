package org.normcl.bench;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.jvm.JavaBackend;
import org.normcl.jvm.JavaKernelInfo;

/**
 * The three things the benchmarks time, each on preallocated inputs and outputs of one shape
 * (rows, cols), float32, layer norm over the last axis with scale and bias (or RMS norm with scale):
 * NormCL's Java backend, ONNX Runtime's LayerNormalization, and a copy of the same number of bytes.
 */
public final class Workloads {
    private Workloads() {
    }

    /** @return the fewest bytes layer norm moves: X, Y, scale, bias, Mean, InvStdDev */
    public static long layerNormBytes(long rows, long cols) {
        return 4 * (2 * rows * cols + 2 * cols + 2 * rows);
    }

    /** @return the fewest bytes RMS norm moves: X, Y, scale, InvStdDev */
    public static long rmsNormBytes(long rows, long cols) {
        return 4 * (2 * rows * cols + cols + rows);
    }

    /** @return {@code [rows, cols]} from "ROWSxCOLS" */
    public static long[] shape(String s) {
        String[] p = s.split("x");
        return new long[] {Long.parseLong(p[0]), Long.parseLong(p[1])};
    }

    static float[] random(int n, long seed) {
        float[] a = new float[n];
        long s = seed * 0x9E3779B97F4A7C15L + 1;
        for (int i = 0; i < n; i++) {
            s ^= s << 13;
            s ^= s >>> 7;
            s ^= s << 17;
            a[i] = ((s >>> 40) * 0x1.0p-24f) * 4f - 2f;
        }
        return a;
    }

    /** NormCL's Java backend (the SPI, so outputs are allocated once, as for the copy). */
    public static final class Java implements AutoCloseable {
        private final JavaBackend backend;
        private final RowNormPlan plan;
        private final Buffer x;
        private final Buffer scale;
        private final Buffer bias;
        private final Buffer y;
        private final Buffer mean;
        private final Buffer inv;

        public Java(long rows, long cols, boolean rms, int threads) {
            backend = new JavaBackend(threads);
            plan = RowNormPlan.contiguous(rows, cols, rms ? StatMode.RMS : StatMode.MEAN_VAR, 1e-5f, 1, cols, 1, true,
                    !rms);
            x = backend.importHost(HostTensor.of(random(Math.toIntExact(rows * cols), 1), rows * cols));
            scale = backend.importHost(HostTensor.of(random((int) cols, 2), cols));
            bias = rms ? null : backend.importHost(HostTensor.of(random((int) cols, 3), cols));
            y = backend.allocate(DType.FLOAT32, rows * cols);
            mean = rms ? null : backend.allocate(DType.FLOAT32, rows);
            inv = backend.allocate(DType.FLOAT32, rows);
        }

        public void run() {
            backend.rowNorm(plan, x, scale, bias, y, mean, inv);
        }

        public String description() {
            return backend.description() + " " + JavaKernelInfo.kernels() + " kernels";
        }

        @Override
        public void close() {
            backend.close();
        }
    }

    /**
     * ONNX Runtime: one LayerNormalization node, intra-op threads as given, outputs pinned
     * (preallocated), threads not spinning between runs.
     */
    public static final class Ort implements AutoCloseable {
        private final OrtEnvironment env = OrtEnvironment.getEnvironment();
        private final OrtSession session;
        private final Map<String, OnnxTensor> inputs;
        private final Map<String, OnnxTensor> outputs;

        public Ort(long rows, long cols, int threads) throws OrtException {
            OrtSession.SessionOptions options = new OrtSession.SessionOptions();
            options.setIntraOpNumThreads(threads);
            options.setInterOpNumThreads(1);
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            // No spin-waiting between runs: idle ONNX Runtime threads would otherwise spin on the same
            // two cores while the other workloads run (timed alternately in SideBySide).
            options.addConfigEntry("session.intra_op.allow_spinning", "0");
            session = env.createSession(OnnxModels.layerNorm(rows, cols, 1e-5f), options);
            inputs = Map.of("X", tensor(random(Math.toIntExact(rows * cols), 1), rows, cols),
                    "Scale", tensor(random((int) cols, 2), cols),
                    "B", tensor(random((int) cols, 3), cols));
            outputs = Map.of("Y", tensor(new float[Math.toIntExact(rows * cols)], rows, cols),
                    "Mean", tensor(new float[(int) rows], rows, 1),
                    "InvStdDev", tensor(new float[(int) rows], rows, 1));
        }

        private OnnxTensor tensor(float[] data, long... dims) throws OrtException {
            FloatBuffer b = ByteBuffer.allocateDirect(data.length * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
            b.put(data).rewind();
            return OnnxTensor.createTensor(env, b, dims);
        }

        public void run() throws OrtException {
            try (OrtSession.Result r = session.run(inputs, outputs)) {
                // outputs are written into the pinned tensors; the result only holds references
            }
        }

        @Override
        public void close() throws OrtException {
            for (OnnxTensor t : inputs.values()) {
                t.close();
            }
            for (OnnxTensor t : outputs.values()) {
                t.close();
            }
            session.close();
        }
    }

    /** {@code System.arraycopy} of {@code bytes / 8} floats, split over {@code threads} threads. */
    public static final class Copy implements AutoCloseable {
        private final float[] src;
        private final float[] dst;
        private final int threads;
        private final ExecutorService pool;

        public Copy(long bytes, int threads) {
            int n = Math.toIntExact(bytes / 8);
            src = random(n, 4);
            dst = new float[n];
            this.threads = threads;
            pool = threads > 1 ? Executors.newFixedThreadPool(threads, r -> {
                Thread t = new Thread(r, "bench-copy");
                t.setDaemon(true);
                return t;
            }) : null;
        }

        /** @return the bytes moved: read plus written */
        public long bytes() {
            return 8L * src.length;
        }

        public void run() throws Exception {
            int n = src.length;
            if (pool == null) {
                System.arraycopy(src, 0, dst, 0, n);
                return;
            }
            List<Future<?>> parts = new ArrayList<>(threads);
            for (int t = 0; t < threads; t++) {
                int from = (int) ((long) n * t / threads);
                int to = (int) ((long) n * (t + 1) / threads);
                parts.add(pool.submit(() -> System.arraycopy(src, from, dst, from, to - from)));
            }
            for (Future<?> f : parts) {
                f.get();
            }
        }

        @Override
        public void close() {
            if (pool != null) {
                pool.shutdownNow();
            }
        }
    }
}
