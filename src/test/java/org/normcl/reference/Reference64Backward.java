package org.normcl.reference;

import java.util.function.Function;

/**
 * Float64 reference gradients for every normalization, and central finite differences to check
 * them. Written independently of NormCL's code.
 *
 * <p>Every operator is described by a {@link Sliced} layout: element i is normalized with the
 * statistics of slice {@code slice[i]} and scaled by affine entry {@code affine[i]}. With
 * {@code xhat = (x - mean) * inv}, {@code y = xhat * w + b} and {@code g = dy * w}, the gradients
 * are (means over a slice):
 * <pre>
 *   dx     = inv * (g - mean(g) - xhat * mean(g * xhat))     (RMS: without mean(g); xhat = x * inv)
 *   dScale = sum over the affine entry of dy * xhat
 *   dBias  = sum over the affine entry of dy
 * </pre>
 * Batch norm in inference mode treats its running statistics as constants: {@code dx = dy * w * inv}.
 */
public final class Reference64Backward {
    private Reference64Backward() {
    }

    /** Gradients: dx, dScale and dBias (null for RMS). */
    public record Grads(double[] dx, double[] dScale, double[] dBias) {
    }

    /**
     * An operator's layout: which slice (statistics) and which affine entry each element uses.
     *
     * @param slice per element, the slice index
     * @param affine per element, the affine index
     * @param slices the number of slices
     * @param affines the number of affine entries
     * @param rms RMS normalization (no mean)
     * @param eps epsilon
     */
    public record Sliced(int[] slice, int[] affine, int slices, int affines, boolean rms, double eps) {
    }

    /** Layer (or RMS) norm over dims axis..rank-1. */
    public static Sliced layer(long[] shape, int axis, float eps, boolean rms) {
        int a = Reference64.normalizeAxis(axis, shape.length);
        int cols = (int) product(shape, a, shape.length);
        int n = (int) product(shape, 0, shape.length);
        int[] slice = new int[n];
        int[] affine = new int[n];
        for (int i = 0; i < n; i++) {
            slice[i] = i / cols;
            affine[i] = i % cols;
        }
        return new Sliced(slice, affine, cols == 0 ? 0 : n / cols, cols, rms, eps);
    }

    /** Group norm on (N, C, ...): per-channel (or per-group) affine. */
    public static Sliced group(long[] shape, int groups, boolean perGroupAffine, float eps) {
        int c = (int) shape[1];
        int spatial = (int) product(shape, 2, shape.length);
        int n = (int) product(shape, 0, shape.length);
        int[] slice = new int[n];
        int[] affine = new int[n];
        for (int i = 0; i < n; i++) {
            int sample = i / (c * spatial);
            int channel = (i / spatial) % c;
            int g = channel / (c / groups);
            slice[i] = sample * groups + g;
            affine[i] = perGroupAffine ? g : channel;
        }
        return new Sliced(slice, affine, (int) shape[0] * groups, perGroupAffine ? groups : c, false, eps);
    }

    /** Instance norm on (N, C, ...). */
    public static Sliced instance(long[] shape, float eps) {
        return group(shape, (int) shape[1], false, eps);
    }

    /** Batch norm (training) on (N, C, ...): one slice per channel. */
    public static Sliced batch(long[] shape, float eps) {
        int c = (int) shape[1];
        int spatial = (int) product(shape, 2, shape.length);
        int n = (int) product(shape, 0, shape.length);
        int[] slice = new int[n];
        for (int i = 0; i < n; i++) {
            slice[i] = (i / spatial) % c;
        }
        return new Sliced(slice, slice.clone(), c, c, false, eps);
    }

    /** Group norm on a channels-last (N, D..., C) tensor. */
    public static Sliced groupChannelsLast(long[] shape, int groups, boolean perGroupAffine, float eps) {
        int c = (int) shape[shape.length - 1];
        int n = (int) product(shape, 0, shape.length);
        int perSample = (int) product(shape, 1, shape.length);
        int[] slice = new int[n];
        int[] affine = new int[n];
        for (int i = 0; i < n; i++) {
            int sample = i / perSample;
            int channel = i % c;
            int g = channel / (c / groups);
            slice[i] = sample * groups + g;
            affine[i] = perGroupAffine ? g : channel;
        }
        return new Sliced(slice, affine, (int) shape[0] * groups, perGroupAffine ? groups : c, false, eps);
    }

    /** Instance norm on a channels-last (N, D..., C) tensor. */
    public static Sliced instanceChannelsLast(long[] shape, float eps) {
        return groupChannelsLast(shape, (int) shape[shape.length - 1], false, eps);
    }

    /** Batch norm (training) on a channels-last (N, D..., C) tensor. */
    public static Sliced batchChannelsLast(long[] shape, float eps) {
        int c = (int) shape[shape.length - 1];
        int n = (int) product(shape, 0, shape.length);
        int[] slice = new int[n];
        for (int i = 0; i < n; i++) {
            slice[i] = i % c;
        }
        return new Sliced(slice, slice.clone(), c, c, false, eps);
    }

    /**
     * Per-slice mean (0 for RMS) and inverse standard deviation, two-pass on values shifted by the
     * slice's first value: for float32 data the shift changes nothing, and for float64 data with a
     * large offset (1e9) it keeps the digits a float64 mean would round away.
     */
    public static double[][] stats(Sliced op, double[] x) {
        double[][] sh = shifted(op, x);
        double[] shift = sh[0];
        double[] shiftedMean = sh[1];
        double[] inv = sh[2];
        double[] mean = new double[op.slices()];
        for (int s = 0; s < mean.length; s++) {
            mean[s] = shift[s] + shiftedMean[s];
        }
        return new double[][] {mean, inv};
    }

    /** Per slice: the shift, the mean of the shifted values, and the inverse standard deviation. */
    private static double[][] shifted(Sliced op, double[] x) {
        double[] count = new double[op.slices()];
        double[] shift = new double[op.slices()];
        boolean[] seen = new boolean[op.slices()];
        double[] mean = new double[op.slices()];
        for (int i = 0; i < x.length; i++) {
            int s = op.slice()[i];
            if (!seen[s] && !op.rms()) {
                seen[s] = true;
                shift[s] = Double.isFinite(x[i]) ? x[i] : 0;
            }
            count[s]++;
            if (!op.rms()) {
                mean[s] += x[i] - shift[s];
            }
        }
        for (int s = 0; s < mean.length; s++) {
            mean[s] /= count[s];
        }
        double[] var = new double[op.slices()];
        for (int i = 0; i < x.length; i++) {
            int s = op.slice()[i];
            double d = (x[i] - shift[s]) - mean[s];
            var[s] += d * d;
        }
        double[] inv = new double[op.slices()];
        for (int s = 0; s < inv.length; s++) {
            inv[s] = 1 / Math.sqrt(var[s] / count[s] + op.eps());
        }
        return new double[][] {shift, mean, inv};
    }

    /** The normalized values {@code (x - mean) * inv}, subtracting shift and shifted mean separately. */
    public static double[] xhat(Sliced op, double[] x) {
        double[][] sh = shifted(op, x);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int s = op.slice()[i];
            out[i] = ((x[i] - sh[0][s]) - sh[1][s]) * sh[2][s];
        }
        return out;
    }

    /** The forward pass in float64 (for finite differences): y = xhat * w + b. */
    public static double[] forward(Sliced op, double[] x, double[] w, double[] b) {
        double[] xhat = xhat(op, x);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int a = op.affine()[i];
            y[i] = xhat[i] * (w == null ? 1 : w[a]) + (b == null ? 0 : b[a]);
        }
        return y;
    }

    /** The analytic gradients (statistics recomputed from x). */
    public static Grads backward(Sliced op, double[] x, double[] dy, double[] w) {
        double[][] st = stats(op, x);
        double[] inv = st[1];
        double[] xh = xhat(op, x);
        int n = x.length;
        double[] count = new double[op.slices()];
        double[] sumG = new double[op.slices()];
        double[] sumGx = new double[op.slices()];
        double[] dScale = new double[op.affines()];
        double[] dBias = new double[op.affines()];
        for (int i = 0; i < n; i++) {
            int s = op.slice()[i];
            int a = op.affine()[i];
            double xhat = xh[i];
            double g = dy[i] * (w == null ? 1 : w[a]);
            count[s]++;
            sumG[s] += g;
            sumGx[s] += g * xhat;
            dScale[a] += dy[i] * xhat;
            dBias[a] += dy[i];
        }
        double[] dx = new double[n];
        for (int i = 0; i < n; i++) {
            int s = op.slice()[i];
            double xhat = xh[i];
            double g = dy[i] * (w == null ? 1 : w[op.affine()[i]]);
            double meanG = op.rms() ? 0 : sumG[s] / count[s];
            dx[i] = inv[s] * (g - meanG - xhat * sumGx[s] / count[s]);
        }
        return new Grads(dx, dScale, op.rms() ? null : dBias);
    }

    /** Batch norm in inference mode: running statistics are constants. */
    public static Grads batchInference(long[] shape, double[] x, double[] dy, double[] w, double[] runMean,
            double[] runVar, float eps) {
        int c = (int) shape[1];
        int spatial = (int) product(shape, 2, shape.length);
        double[] dx = new double[x.length];
        double[] dScale = new double[c];
        double[] dBias = new double[c];
        for (int i = 0; i < x.length; i++) {
            int ch = (i / spatial) % c;
            double inv = 1 / Math.sqrt(runVar[ch] + eps);
            double wc = w == null ? 1 : w[ch];
            dx[i] = dy[i] * wc * inv;
            dScale[ch] += dy[i] * (x[i] - runMean[ch]) * inv;
            dBias[ch] += dy[i];
        }
        return new Grads(dx, dScale, dBias);
    }

    /**
     * Central finite differences of the scalar {@code L(v) = sum dy * f(v)} with respect to each
     * component of {@code v}: {@code (L(v + h e_i) - L(v - h e_i)) / 2h}.
     */
    public static double[] finiteDifferences(Function<double[], double[]> f, double[] v, double[] dy, double h) {
        double[] grad = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            double[] p = v.clone();
            double[] m = v.clone();
            p[i] += h;
            m[i] -= h;
            grad[i] = (dot(dy, f.apply(p)) - dot(dy, f.apply(m))) / (2 * h);
        }
        return grad;
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    private static long product(long[] shape, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) {
            p *= shape[i];
        }
        return p;
    }

    /** @return the float array widened to double */
    public static double[] widen(float[] a) {
        if (a == null) {
            return null;
        }
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }
}
