package org.normcl.jvm;

/**
 * Plain-Java {@link GradKernels}: reductions in four independent pairs of float accumulators,
 * elementwise loops the JIT's superword pass can vectorize. Used when the Vector API is absent.
 */
final class ScalarGradKernels extends GradKernels {

    /** {@code a * b + c}, fused where the CPU has FMA (as the vector kernels). */
    static float fma(float a, float b, float c) {
        return RowKernels.HAS_FMA ? Math.fma(a, b, c) : a * b + c;
    }

    @Override
    GradKernels fresh() {
        return new ScalarGradKernels();
    }

    @Override
    float rowSums(float[] dy, float[] x, float[] w, int off, int aoff, int n, float mu, float is) {
        float g0 = 0, g1 = 0, g2 = 0, g3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0;
        int i = 0;
        for (; i + 3 < n; i += 4) {
            float a0 = dy[off + i] * w[aoff + i];
            float a1 = dy[off + i + 1] * w[aoff + i + 1];
            float a2 = dy[off + i + 2] * w[aoff + i + 2];
            float a3 = dy[off + i + 3] * w[aoff + i + 3];
            g0 += a0;
            g1 += a1;
            g2 += a2;
            g3 += a3;
            q0 = fma(a0, (x[off + i] - mu) * is, q0);
            q1 = fma(a1, (x[off + i + 1] - mu) * is, q1);
            q2 = fma(a2, (x[off + i + 2] - mu) * is, q2);
            q3 = fma(a3, (x[off + i + 3] - mu) * is, q3);
        }
        float g = (g0 + g1) + (g2 + g3);
        float q = (q0 + q1) + (q2 + q3);
        for (; i < n; i++) {
            float a = dy[off + i] * w[aoff + i];
            g += a;
            q = fma(a, (x[off + i] - mu) * is, q);
        }
        second = q;
        return g;
    }

    @Override
    void dxAccumulate(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu, float is,
            float meanG, float meanGx, float[] fs, float[] fb) {
        float nb = -meanGx;
        for (int i = 0; i < n; i++) {
            float d = dy[off + i];
            float xhat = (x[off + i] - mu) * is;
            dx[off + i] = fma(xhat, nb, d * w[aoff + i] - meanG) * is;
            fs[aoff + i] = fma(d, xhat, fs[aoff + i]);
            fb[aoff + i] += d;
        }
    }

    @Override
    void accumulate(float[] dy, float[] x, int off, int aoff, int n, float mu, float is, float[] fs, float[] fb) {
        for (int i = 0; i < n; i++) {
            float d = dy[off + i];
            fs[aoff + i] = fma(d, (x[off + i] - mu) * is, fs[aoff + i]);
            fb[aoff + i] += d;
        }
    }

    @Override
    void accumulateColumns(float[] dy, float[] x, int off, int n, float[] mean, float[] inv, float[] fs,
            float[] fb) {
        for (int i = 0; i < n; i++) {
            float d = dy[off + i];
            fs[i] = fma(d, (x[off + i] - mean[i]) * inv[i], fs[i]);
            fb[i] += d;
        }
    }

    @Override
    void dxUniform(float[] dy, float[] x, float[] dx, int off, int n, float mu, float is, float w, float meanG,
            float meanGx) {
        float nb = -meanGx;
        for (int i = off; i < off + n; i++) {
            dx[i] = fma((x[i] - mu) * is, nb, fma(dy[i], w, -meanG)) * is;
        }
    }
}
