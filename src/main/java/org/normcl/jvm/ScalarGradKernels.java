package org.normcl.jvm;

import static org.normcl.jvm.RowKernels.fma;

/**
 * Plain-Java {@link GradKernels}: reductions in four independent pairs of float accumulators,
 * elementwise loops the JIT's superword pass can vectorize. Used when the Vector API is absent.
 */
final class ScalarGradKernels extends GradKernels {

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
    void pairSumsAccumulate(float[] dy, float[] x, float[] w, int offA, int offB, int aoff, int n, float muA,
            float isA, float muB, float isB, float[] fs, float[] fb, float[] sums) {
        // rowSums' four accumulators per sum and row, in its order; the accumulators take row a, then b.
        float ga0 = 0, ga1 = 0, ga2 = 0, ga3 = 0, qa0 = 0, qa1 = 0, qa2 = 0, qa3 = 0;
        float gb0 = 0, gb1 = 0, gb2 = 0, gb3 = 0, qb0 = 0, qb1 = 0, qb2 = 0, qb3 = 0;
        int i = 0;
        for (; i + 3 < n; i += 4) {
            float ha0 = (x[offA + i] - muA) * isA;
            float ha1 = (x[offA + i + 1] - muA) * isA;
            float ha2 = (x[offA + i + 2] - muA) * isA;
            float ha3 = (x[offA + i + 3] - muA) * isA;
            float hb0 = (x[offB + i] - muB) * isB;
            float hb1 = (x[offB + i + 1] - muB) * isB;
            float hb2 = (x[offB + i + 2] - muB) * isB;
            float hb3 = (x[offB + i + 3] - muB) * isB;
            float aa0 = dy[offA + i] * w[aoff + i];
            float aa1 = dy[offA + i + 1] * w[aoff + i + 1];
            float aa2 = dy[offA + i + 2] * w[aoff + i + 2];
            float aa3 = dy[offA + i + 3] * w[aoff + i + 3];
            float ab0 = dy[offB + i] * w[aoff + i];
            float ab1 = dy[offB + i + 1] * w[aoff + i + 1];
            float ab2 = dy[offB + i + 2] * w[aoff + i + 2];
            float ab3 = dy[offB + i + 3] * w[aoff + i + 3];
            ga0 += aa0;
            ga1 += aa1;
            ga2 += aa2;
            ga3 += aa3;
            gb0 += ab0;
            gb1 += ab1;
            gb2 += ab2;
            gb3 += ab3;
            qa0 = fma(aa0, ha0, qa0);
            qa1 = fma(aa1, ha1, qa1);
            qa2 = fma(aa2, ha2, qa2);
            qa3 = fma(aa3, ha3, qa3);
            qb0 = fma(ab0, hb0, qb0);
            qb1 = fma(ab1, hb1, qb1);
            qb2 = fma(ab2, hb2, qb2);
            qb3 = fma(ab3, hb3, qb3);
            addPair(fs, fb, aoff + i, dy[offA + i], ha0, dy[offB + i], hb0);
            addPair(fs, fb, aoff + i + 1, dy[offA + i + 1], ha1, dy[offB + i + 1], hb1);
            addPair(fs, fb, aoff + i + 2, dy[offA + i + 2], ha2, dy[offB + i + 2], hb2);
            addPair(fs, fb, aoff + i + 3, dy[offA + i + 3], ha3, dy[offB + i + 3], hb3);
        }
        float ga = (ga0 + ga1) + (ga2 + ga3);
        float qa = (qa0 + qa1) + (qa2 + qa3);
        float gb = (gb0 + gb1) + (gb2 + gb3);
        float qb = (qb0 + qb1) + (qb2 + qb3);
        for (; i < n; i++) {
            float ha = (x[offA + i] - muA) * isA;
            float hb = (x[offB + i] - muB) * isB;
            float da = dy[offA + i];
            float db = dy[offB + i];
            float aa = da * w[aoff + i];
            float ab = db * w[aoff + i];
            ga += aa;
            qa = fma(aa, ha, qa);
            gb += ab;
            qb = fma(ab, hb, qb);
            addPair(fs, fb, aoff + i, da, ha, db, hb);
        }
        sums[0] = ga;
        sums[1] = qa;
        sums[2] = gb;
        sums[3] = qb;
    }

    /** Row a's terms of entry c, then row b's: {@link #accumulate}'s operations for two rows. */
    private static void addPair(float[] fs, float[] fb, int c, float da, float ha, float db, float hb) {
        fs[c] = fma(db, hb, fma(da, ha, fs[c]));
        fb[c] = (fb[c] + da) + db;
    }

    @Override
    void dx(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu, float is, float meanG,
            float meanGx) {
        float nb = -meanGx;
        for (int i = 0; i < n; i++) {
            float xhat = (x[off + i] - mu) * is;
            dx[off + i] = fma(xhat, nb, dy[off + i] * w[aoff + i] - meanG) * is;
        }
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
