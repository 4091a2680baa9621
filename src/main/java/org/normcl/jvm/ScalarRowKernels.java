package org.normcl.jvm;

/**
 * Plain-Java kernels: reductions in eight independent float accumulators (the JIT does not reorder
 * float additions, so this is what breaks the add-latency chain), elementwise loops written so the
 * JIT's superword pass vectorizes them. Used when the Vector API is absent.
 */
final class ScalarRowKernels extends RowKernels {


    @Override
    RowKernels fresh() {
        return new ScalarRowKernels();
    }

    @Override
    String name() {
        return "scalar";
    }

    @Override
    int lanes() {
        return 1;
    }

    @Override
    float sumSquaredDeviations(float[] a, int off, int n, float k, float m) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int i = off;
        int end = off + n;
        for (; i + 7 < end; i += 8) {
            float d0 = (a[i] - k) - m;
            float d1 = (a[i + 1] - k) - m;
            float d2 = (a[i + 2] - k) - m;
            float d3 = (a[i + 3] - k) - m;
            float d4 = (a[i + 4] - k) - m;
            float d5 = (a[i + 5] - k) - m;
            float d6 = (a[i + 6] - k) - m;
            float d7 = (a[i + 7] - k) - m;
            s0 = fma(d0, d0, s0);
            s1 = fma(d1, d1, s1);
            s2 = fma(d2, d2, s2);
            s3 = fma(d3, d3, s3);
            s4 = fma(d4, d4, s4);
            s5 = fma(d5, d5, s5);
            s6 = fma(d6, d6, s6);
            s7 = fma(d7, d7, s7);
        }
        float s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
        for (; i < end; i++) {
            float d = (a[i] - k) - m;
            s = fma(d, d, s);
        }
        return s;
    }

    @Override
    float sumSquares(float[] a, int off, int n) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        int i = off;
        int end = off + n;
        for (; i + 7 < end; i += 8) {
            float v0 = a[i], v1 = a[i + 1], v2 = a[i + 2], v3 = a[i + 3];
            float v4 = a[i + 4], v5 = a[i + 5], v6 = a[i + 6], v7 = a[i + 7];
            s0 = fma(v0, v0, s0);
            s1 = fma(v1, v1, s1);
            s2 = fma(v2, v2, s2);
            s3 = fma(v3, v3, s3);
            s4 = fma(v4, v4, s4);
            s5 = fma(v5, v5, s5);
            s6 = fma(v6, v6, s6);
            s7 = fma(v7, v7, s7);
        }
        float s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
        for (; i < end; i++) {
            s = fma(a[i], a[i], s);
        }
        return s;
    }

    @Override
    float sumAndSquaresShifted(float[] a, int off, int n, float k) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        float q0 = 0, q1 = 0, q2 = 0, q3 = 0, q4 = 0, q5 = 0, q6 = 0, q7 = 0;
        int i = off;
        int end = off + n;
        for (; i + 7 < end; i += 8) {
            float d0 = a[i] - k, d1 = a[i + 1] - k, d2 = a[i + 2] - k, d3 = a[i + 3] - k;
            float d4 = a[i + 4] - k, d5 = a[i + 5] - k, d6 = a[i + 6] - k, d7 = a[i + 7] - k;
            s0 += d0;
            s1 += d1;
            s2 += d2;
            s3 += d3;
            s4 += d4;
            s5 += d5;
            s6 += d6;
            s7 += d7;
            q0 = fma(d0, d0, q0);
            q1 = fma(d1, d1, q1);
            q2 = fma(d2, d2, q2);
            q3 = fma(d3, d3, q3);
            q4 = fma(d4, d4, q4);
            q5 = fma(d5, d5, q5);
            q6 = fma(d6, d6, q6);
            q7 = fma(d7, d7, q7);
        }
        float s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
        float q = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7));
        for (; i < end; i++) {
            float d = a[i] - k;
            s += d;
            q = fma(d, d, q);
        }
        squares = q;
        return s;
    }

    @Override
    void normalizeAffine(float[] x, float[] y, int off, int n, float k, float m, float inv, float[] w, float[] b,
            int aoff) {
        int d = aoff - off;
        if (b == null) {
            for (int i = off; i < off + n; i++) {
                y[i] = (((x[i] - k) - m) * inv) * w[i + d];
            }
            return;
        }
        for (int i = off; i < off + n; i++) {
            y[i] = fma(((x[i] - k) - m) * inv, w[i + d], b[i + d]);
        }
    }

    @Override
    void normalizeUniform(float[] x, float[] y, int off, int n, float k, float m, float inv, float w, float b) {
        for (int i = off; i < off + n; i++) {
            y[i] = fma(((x[i] - k) - m) * inv, w, b);
        }
    }

    @Override
    float normalizeAffineSumSquaresNext(float[] x, float[] y, int off, int n, float k, float m, float inv,
            float[] w, float[] b, int aoff, int next) {
        normalizeAffine(x, y, off, n, k, m, inv, w, b, aoff);
        return sumSquares(x, next, n);
    }

    @Override
    float normalizeAffineSumAndSquaresNext(float[] x, float[] y, int aOff, int n, float k, float m, float inv,
            float[] w, float[] b, int aoff, int sOff, float ks) {
        normalizeAffine(x, y, aOff, n, k, m, inv, w, b, aoff);
        return sumAndSquaresShifted(x, sOff, n, ks);
    }

    @Override
    void columnSumAndSquares(float[] x, int off, int stride, int rows, int width, float[] k, int koff, float[] sum,
            float[] squares) {
        java.util.Arrays.fill(sum, 0, width, 0f);
        java.util.Arrays.fill(squares, 0, width, 0f);
        for (int r = 0; r < rows; r++) {
            int o = off + r * stride;
            for (int j = 0; j < width; j++) {
                float d = x[o + j] - k[koff + j];
                sum[j] += d;
                squares[j] = fma(d, d, squares[j]);
            }
        }
    }

    @Override
    void columnApply(float[] x, float[] y, int off, int width, float[] mu, float[] lo, float[] is, float[] w,
            float[] b) {
        for (int j = 0; j < width; j++) {
            y[off + j] = fma(((x[off + j] - mu[j]) - lo[j]) * is[j], w[j], b[j]);
        }
    }
}
