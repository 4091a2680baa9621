package org.normcl.jvm;

import java.util.Arrays;
import java.util.Optional;

import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Backend;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;

/**
 * The pure-Java backend: the same primitives as the OpenCL kernels, multi-threaded over rows and
 * channels. Statistics are accumulated in double precision from float32 data, so this backend is
 * also the reference the OpenCL self-test compares against.
 */
public final class JavaBackend implements Backend {
    private final Parallel parallel;
    /** Buffers handed out and not yet closed: closing the backend closes them, as the OpenCL backend does. */
    private final java.util.Set<JavaBuffer> live = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * @param threads worker threads (1 runs on the caller's thread)
     */
    public JavaBackend(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads = " + threads + ": expected >= 1");
        }
        this.parallel = new Parallel(threads);
    }

    @Override
    public BackendKind kind() {
        return BackendKind.JAVA;
    }

    @Override
    public String description() {
        return "Java (" + parallel.threads() + " thread" + (parallel.threads() == 1 ? "" : "s") + ")";
    }

    @Override
    public Optional<DeviceInfo> device() {
        return Optional.empty();
    }

    @Override
    public Buffer allocate(DType dtype, long elements) {
        requireFloat32(dtype);
        if (elements > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the Java backend holds at most " + (Integer.MAX_VALUE - 8)
                    + " elements per tensor; asked for " + elements);
        }
        return new JavaBuffer(new float[(int) elements], live);
    }

    private static void requireFloat32(DType dtype) {
        if (dtype != DType.FLOAT32) {
            throw new IllegalArgumentException("dtype = " + dtype + ": expected FLOAT32");
        }
    }

    @Override
    public void write(Buffer dst, float[] src) {
        System.arraycopy(src, 0, arr(dst), 0, src.length);
    }

    @Override
    public void read(Buffer src, float[] dst) {
        System.arraycopy(arr(src), 0, dst, 0, dst.length);
    }

    @Override
    public Buffer scratch(DType dtype, long elements) {
        return allocate(dtype, elements);
    }

    @Override
    public Buffer importHost(float[] data) {
        return new JavaBuffer(data, live);
    }

    @Override
    public float[] exportHost(Buffer buffer) {
        return arr(buffer);
    }

    @Override
    public void copy(Buffer src, Buffer dst) {
        float[] s = arr(src);
        System.arraycopy(s, 0, arr(dst), 0, s.length);
    }

    @Override
    public void fill(Buffer dst, float value) {
        Arrays.fill(arr(dst), value);
    }

    private static float[] arr(Buffer b) {
        return b == null ? null : ((JavaBuffer) b).data();
    }

    @Override
    public void rowNorm(RowNormPlan p, Buffer xb, Buffer scaleb, Buffer biasb, Buffer yb, Buffer meanb,
            Buffer invStdb) {
        float[] x = arr(xb);
        float[] y = arr(yb);
        float[] scale = p.hasScale() ? arr(scaleb) : null;
        float[] bias = p.hasBias() ? arr(biasb) : null;
        float[] meanOut = arr(meanb);
        float[] invOut = arr(invStdb);
        int cols = (int) p.cols();
        parallel.forRange(p.rows(), cols, (from, to) -> {
            Moments m = new Moments();
            for (int r = (int) from; r < to; r++) {
                int off = r * cols;
                float shift = 0f; // the mean is shift + shiftedMean, as in the OpenCL kernels
                float shiftedMean = 0f;
                float inv;
                if (p.mode() == StatMode.RMS) {
                    inv = invStd(p.mode(), Moments.sumOfSquares(x, off, cols) / cols, p.epsilon());
                } else {
                    m.reset();
                    m.addRange(x, off, cols);
                    shift = Float.isFinite(x[off]) ? x[off] : 0f;
                    shiftedMean = (float) (m.mean - shift);
                    inv = invStd(p.mode(), m.variance(), p.epsilon());
                    if (meanOut != null) {
                        meanOut[r] = (float) m.mean;
                    }
                }
                if (invOut != null) {
                    invOut[r] = inv;
                }
                if (y != null) {
                    applyRow(p, x, y, off, r, shift, shiftedMean, inv, scale, bias);
                }
            }
        });
    }

    /**
     * y = (((x - shift) - mean) * inv) * w + b over one row, with w and b per the plan's affine
     * index. Subtracting the shift first keeps the digits a float32 mean would lose when the row
     * has a large common offset.
     */
    private static void applyRow(RowNormPlan p, float[] x, float[] y, int off, long row, float shift, float mean,
            float inv, float[] scale, float[] bias) {
        int cpg = (int) p.channelsPerGroup();
        int spatial = (int) p.spatial();
        int affineBase = (int) ((row % p.groups()) * cpg);
        int i = off;
        for (int c = 0; c < cpg; c++) {
            float w = scale != null && spatial > 1 ? scale[affineBase + c] : 1f;
            float b = bias != null && spatial > 1 ? bias[affineBase + c] : 0f;
            if (spatial == 1) {
                // one affine entry per element: the layer-norm case, fetched inline.
                float v = ((x[i] - shift) - mean) * inv;
                if (scale != null) {
                    v *= scale[affineBase + c];
                }
                if (bias != null) {
                    v += bias[affineBase + c];
                }
                y[i++] = v;
                continue;
            }
            for (int s = 0; s < spatial; s++, i++) {
                y[i] = ((x[i] - shift) - mean) * inv * w + b;
            }
        }
    }

    /** The one place the Java backend turns a variance (or mean square) into an inverse scale. */
    static float invStd(StatMode mode, double varianceOrMeanSquare, float epsilon) {
        double v = (float) varianceOrMeanSquare; // the statistic is a float32 value, as on the device
        if (mode == StatMode.MEAN_VAR_EPS_OUTSIDE) {
            return (float) (1.0 / (Math.sqrt(v) + epsilon));
        }
        return (float) (1.0 / Math.sqrt(v + epsilon));
    }

    @Override
    public void channelStats(ChannelPlan p, Buffer xb, Buffer meanb, Buffer meanLob, Buffer invStdb,
            RunningUpdate update, Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut) {
        Moments[] moments = channelMoments(parallel, p, arr(xb));
        float[] mean = arr(meanb);
        float[] meanLo = arr(meanLob);
        float[] inv = arr(invStdb);
        float[] rmIn = arr(runMeanIn);
        float[] rvIn = arr(runVarIn);
        float[] rmOut = arr(runMeanOut);
        float[] rvOut = arr(runVarOut);
        for (int c = 0; c < moments.length; c++) {
            Moments m = moments[c];
            float batchMean = (float) m.mean;
            float batchVar = (float) m.variance();
            mean[c] = batchMean;
            if (meanLo != null) {
                meanLo[c] = (float) (m.mean - batchMean);
            }
            inv[c] = invStd(p.mode(), batchVar, p.epsilon());
            if (update != null) {
                float v = update.unbiased() ? (float) (m.m2 / (m.count - 1)) : batchVar;
                float w = update.batchWeight();
                rmOut[c] = rmIn[c] * (1f - w) + batchMean * w;
                rvOut[c] = rvIn[c] * (1f - w) + v * w;
            }
        }
    }

    /**
     * The moments of every channel. Each channel is split into parts so that small channel counts
     * still use every thread; the parts are merged in a fixed order, so the result does not depend
     * on scheduling.
     */
    static Moments[] channelMoments(Parallel parallel, ChannelPlan p, float[] x) {
        int channels = (int) p.channels();
        long perChannel = p.perChannel();
        int parts = (int) Math.max(1, Math.min(perChannel / Parallel.MIN_ELEMENTS_PER_TASK,
                (4L * parallel.threads() + channels - 1) / channels));
        Moments[] partial = new Moments[channels * parts];
        parallel.forRange((long) channels * parts, perChannel / parts, (from, to) -> {
            for (long t = from; t < to; t++) {
                int c = (int) (t / parts);
                int part = (int) (t % parts);
                Moments m = new Moments();
                addChannelRange(p, x, c, perChannel * part / parts, perChannel * (part + 1) / parts, m);
                partial[(int) t] = m;
            }
        });
        Moments[] merged = new Moments[channels];
        for (int c = 0; c < channels; c++) {
            Moments m = new Moments();
            for (int part = 0; part < parts; part++) {
                Moments q = partial[c * parts + part];
                m.merge(q.count, q.mean, q.m2);
            }
            merged[c] = m;
        }
        return merged;
    }

    /** Adds the channel's values with virtual indices {@code [begin, end)} (index = o * inner + s). */
    private static void addChannelRange(ChannelPlan p, float[] x, int c, long begin, long end, Moments m) {
        long inner = p.inner();
        long channels = p.channels();
        long o = begin / inner;
        long s = begin % inner;
        long v = begin;
        while (v < end) {
            int len = (int) Math.min(inner - s, end - v);
            int off = (int) ((o * channels + c) * inner + s);
            m.addRange(x, off, len);
            v += len;
            o++;
            s = 0;
        }
    }

    @Override
    public void channelInvStd(ChannelPlan p, Buffer var, Buffer invStd) {
        float[] v = arr(var);
        float[] inv = arr(invStd);
        for (int c = 0; c < v.length; c++) {
            inv[c] = invStd(p.mode(), v[c], p.epsilon());
        }
    }

    @Override
    public void channelApply(ChannelPlan p, Buffer xb, Buffer meanb, Buffer meanLob, Buffer invStdb, Buffer scaleb,
            Buffer biasb, Buffer yb) {
        float[] meanLo = arr(meanLob);
        float[] x = arr(xb);
        float[] y = arr(yb);
        float[] mean = arr(meanb);
        float[] inv = arr(invStdb);
        float[] scale = arr(scaleb);
        float[] bias = arr(biasb);
        int inner = (int) p.inner();
        int channels = (int) p.channels();
        parallel.forRange(p.outer() * channels, inner, (from, to) -> {
            for (long seg = from; seg < to; seg++) {
                int c = (int) (seg % channels);
                float mu = mean[c];
                float lo = meanLo != null ? meanLo[c] : 0f;
                float is = inv[c];
                float w = scale != null ? scale[c] : 1f;
                float b = bias != null ? bias[c] : 0f;
                int off = (int) (seg * inner);
                for (int i = off; i < off + inner; i++) {
                    y[i] = ((x[i] - mu) - lo) * is * w + b;
                }
            }
        });
    }

    @Override
    public void channelMoments(ChannelPlan p, Buffer x, Buffer mean, Buffer m2) {
        JavaBackward.channelMoments(parallel, p, arr(x), arr(mean), arr(m2));
    }

    @Override
    public void rowApply(RowNormPlan p, Buffer x, Buffer mean, Buffer invStd, Buffer scale, Buffer bias, Buffer y) {
        JavaBackward.rowApply(parallel, p, arr(x), arr(mean), arr(invStd), arr(scale), arr(bias), arr(y));
    }

    @Override
    public void rowNormBackward(RowNormPlan p, Buffer dy, Buffer x, Buffer scale, Buffer mean, Buffer invStd,
            Buffer dx) {
        JavaBackward.rowNormBackward(parallel, p, arr(dy), arr(x), arr(scale), arr(mean), arr(invStd), arr(dx));
    }

    @Override
    public void affineGrad(AffineGradPlan p, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer dScale,
            Buffer dBias) {
        JavaBackward.affineGrad(parallel, p, arr(dy), arr(x), arr(mean), arr(invStd), arr(dScale), arr(dBias));
    }

    @Override
    public void channelBackward(ChannelPlan p, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer scale,
            Buffer sumDyXhat, Buffer sumDy, Buffer dx) {
        JavaBackward.channelBackward(parallel, p, arr(dy), arr(x), arr(mean), arr(invStd), arr(scale), arr(sumDyXhat),
                arr(sumDy), arr(dx));
    }

    @Override
    public void close() {
        for (JavaBuffer b : live.toArray(new JavaBuffer[0])) {
            b.close();
        }
        parallel.shutdown();
    }
}
