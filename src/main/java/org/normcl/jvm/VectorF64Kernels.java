package org.normcl.jvm;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link F64Kernels} on the Vector API: 4-lane double vectors (four of them hold the sixteen
 * accumulators of {@link F64Kernels#F64_ACCUMULATORS}, two the eight of the backward sums), the
 * scalar kernels' operations in their order, so the same bits. Loaded by
 * {@link F64Kernels#vectorOrNull()} only when the module is in the boot layer, and used only where
 * {@link VectorRowKernels#D}, the doubles at the float kernels' width, has 4 lanes (the default
 * 256-bit width; at 128 or 512 bits float64 takes the scalar loops).
 */
final class VectorF64Kernels extends F64Kernels {
    private static final VectorSpecies<Double> D = VectorRowKernels.D;

    @Override
    F64Kernels fresh() {
        return new VectorF64Kernels();
    }

    @Override
    int lanes() {
        return D.length();
    }

    /** Scratch for the float64 accumulators' lanes. */
    private final double[] f64Lanes = new double[F64_ACCUMULATORS];

    /** {@link F64Kernels#combineF64} of the sixteen lanes in {@code t}. */
    private static double combineF64(double[] t) {
        return combineF64(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
                t[14], t[15]);
    }

    @Override
    double sumShifted(double[] x, int off, int n, double k) {
        DoubleVector kv = DoubleVector.broadcast(D, k);
        DoubleVector a0 = DoubleVector.zero(D), a1 = a0, a2 = a0, a3 = a0;
        int bound = n - n % F64_ACCUMULATORS;
        for (int t = 0; t < bound; t += F64_ACCUMULATORS) {
            int i = off + t;
            a0 = a0.add(DoubleVector.fromArray(D, x, i).sub(kv));
            a1 = a1.add(DoubleVector.fromArray(D, x, i + 4).sub(kv));
            a2 = a2.add(DoubleVector.fromArray(D, x, i + 8).sub(kv));
            a3 = a3.add(DoubleVector.fromArray(D, x, i + 12).sub(kv));
        }
        double[] acc = f64Lanes;
        a0.intoArray(acc, 0);
        a1.intoArray(acc, 4);
        a2.intoArray(acc, 8);
        a3.intoArray(acc, 12);
        for (int t = bound; t < n; t++) {
            acc[0] += x[off + t] - k;
        }
        return combineF64(acc);
    }

    @Override
    double sumSquaredDeviations(double[] x, int off, int n, double k, double m) {
        DoubleVector kv = DoubleVector.broadcast(D, k);
        DoubleVector mv = DoubleVector.broadcast(D, m);
        DoubleVector a0 = DoubleVector.zero(D), a1 = a0, a2 = a0, a3 = a0;
        int bound = n - n % F64_ACCUMULATORS;
        for (int t = 0; t < bound; t += F64_ACCUMULATORS) {
            int i = off + t;
            DoubleVector d0 = DoubleVector.fromArray(D, x, i).sub(kv).sub(mv);
            DoubleVector d1 = DoubleVector.fromArray(D, x, i + 4).sub(kv).sub(mv);
            DoubleVector d2 = DoubleVector.fromArray(D, x, i + 8).sub(kv).sub(mv);
            DoubleVector d3 = DoubleVector.fromArray(D, x, i + 12).sub(kv).sub(mv);
            a0 = a0.add(d0.mul(d0));
            a1 = a1.add(d1.mul(d1));
            a2 = a2.add(d2.mul(d2));
            a3 = a3.add(d3.mul(d3));
        }
        double[] acc = f64Lanes;
        a0.intoArray(acc, 0);
        a1.intoArray(acc, 4);
        a2.intoArray(acc, 8);
        a3.intoArray(acc, 12);
        for (int t = bound; t < n; t++) {
            double d = (x[off + t] - k) - m;
            acc[0] += d * d;
        }
        return combineF64(acc);
    }

    @Override
    void normalize(double[] x, double[] y, int off, int n, double k, double m, double inv, double[] scale,
            double[] bias, int aoff) {
        DoubleVector kv = DoubleVector.broadcast(D, k);
        DoubleVector mv = DoubleVector.broadcast(D, m);
        DoubleVector iv = DoubleVector.broadcast(D, inv);
        int t = 0;
        for (int bound = n - n % 4; t < bound; t += 4) {
            DoubleVector v = DoubleVector.fromArray(D, x, off + t).sub(kv).sub(mv).mul(iv);
            if (scale != null) {
                v = v.mul(DoubleVector.fromArray(D, scale, aoff + t));
            }
            if (bias != null) {
                v = v.add(DoubleVector.fromArray(D, bias, aoff + t));
            }
            v.intoArray(y, off + t);
        }
        super.normalize(x, y, off + t, n - t, k, m, inv, scale, bias, aoff + t);
    }

    @Override
    void normalizeUniform(double[] x, double[] y, int off, int n, double k, double m, double inv, double w,
            double b) {
        DoubleVector kv = DoubleVector.broadcast(D, k);
        DoubleVector mv = DoubleVector.broadcast(D, m);
        DoubleVector iv = DoubleVector.broadcast(D, inv);
        DoubleVector wv = DoubleVector.broadcast(D, w);
        DoubleVector bv = DoubleVector.broadcast(D, b);
        int t = 0;
        for (int bound = n - n % 4; t < bound; t += 4) {
            DoubleVector.fromArray(D, x, off + t).sub(kv).sub(mv).mul(iv).mul(wv).add(bv).intoArray(y, off + t);
        }
        super.normalizeUniform(x, y, off + t, n - t, k, m, inv, w, b);
    }

    @Override
    double backwardSums(double[] dy, double[] x, double[] w, int off, int aoff, int n, double mu, double is) {
        DoubleVector muv = DoubleVector.broadcast(D, mu);
        DoubleVector isv = DoubleVector.broadcast(D, is);
        DoubleVector g0 = DoubleVector.zero(D), g1 = g0, q0 = g0, q1 = g0;
        int t = 0;
        for (int bound = n - n % 8; t < bound; t += 8) {
            int i = off + t;
            DoubleVector d0 = DoubleVector.fromArray(D, dy, i);
            DoubleVector d1 = DoubleVector.fromArray(D, dy, i + 4);
            if (w != null) {
                d0 = d0.mul(DoubleVector.fromArray(D, w, aoff + t));
                d1 = d1.mul(DoubleVector.fromArray(D, w, aoff + t + 4));
            }
            g0 = g0.add(d0);
            g1 = g1.add(d1);
            q0 = q0.add(d0.mul(DoubleVector.fromArray(D, x, i).sub(muv)).mul(isv));
            q1 = q1.add(d1.mul(DoubleVector.fromArray(D, x, i + 4).sub(muv)).mul(isv));
        }
        double[] acc = f64Lanes;
        g0.intoArray(acc, 0);
        g1.intoArray(acc, 4);
        q0.intoArray(acc, 8);
        q1.intoArray(acc, 12);
        for (; t < n; t++) {
            double d = grad(dy, w, off + t, aoff + t);
            acc[0] += d;
            acc[8] += d * (x[off + t] - mu) * is;
        }
        backwardSecond = combineF64(acc[8], acc[9], acc[10], acc[11], acc[12], acc[13], acc[14], acc[15]);
        return combineF64(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]);
    }

    @Override
    void backwardDx(double[] dy, double[] x, double[] w, double[] dx, int off, int aoff, int n, double mu,
            double is, double meanG, double meanGx) {
        DoubleVector muv = DoubleVector.broadcast(D, mu);
        DoubleVector isv = DoubleVector.broadcast(D, is);
        DoubleVector mg = DoubleVector.broadcast(D, meanG);
        DoubleVector mgx = DoubleVector.broadcast(D, meanGx);
        int t = 0;
        for (int bound = n - n % 4; t < bound; t += 4) {
            int i = off + t;
            DoubleVector g = DoubleVector.fromArray(D, dy, i);
            if (w != null) {
                g = g.mul(DoubleVector.fromArray(D, w, aoff + t));
            }
            DoubleVector xhat = DoubleVector.fromArray(D, x, i).sub(muv).mul(isv);
            isv.mul(g.sub(mg).sub(xhat.mul(mgx))).intoArray(dx, i);
        }
        super.backwardDx(dy, x, w, dx, off + t, aoff + t, n - t, mu, is, meanG, meanGx);
    }

    @Override
    void accumulateGrad(double[] dy, double[] x, int off, int n, double mu, double is, double[] s, int soff,
            double[] b, int boff) {
        DoubleVector muv = DoubleVector.broadcast(D, mu);
        DoubleVector isv = DoubleVector.broadcast(D, is);
        int t = 0;
        for (int bound = n - n % 4; t < bound; t += 4) {
            DoubleVector d = DoubleVector.fromArray(D, dy, off + t);
            DoubleVector.fromArray(D, s, soff + t).add(d.mul(DoubleVector.fromArray(D, x, off + t).sub(muv)).mul(isv))
                    .intoArray(s, soff + t);
            DoubleVector.fromArray(D, b, boff + t).add(d).intoArray(b, boff + t);
        }
        super.accumulateGrad(dy, x, off + t, n - t, mu, is, s, soff + t, b, boff + t);
    }

    @Override
    void columnShiftedSum(double[] x, int off, int n, double[] k, double[] s) {
        int j = 0;
        for (int bound = n - n % 4; j < bound; j += 4) {
            DoubleVector.fromArray(D, s, j).add(DoubleVector.fromArray(D, x, off + j).sub(DoubleVector.fromArray(D, k, j)))
                    .intoArray(s, j);
        }
        for (; j < n; j++) {
            s[j] += x[off + j] - k[j];
        }
    }

    @Override
    void columnSquaredDeviations(double[] x, int off, int n, double[] k, double[] m, double[] q) {
        int j = 0;
        for (int bound = n - n % 4; j < bound; j += 4) {
            DoubleVector d = DoubleVector.fromArray(D, x, off + j).sub(DoubleVector.fromArray(D, k, j))
                    .sub(DoubleVector.fromArray(D, m, j));
            DoubleVector.fromArray(D, q, j).add(d.mul(d)).intoArray(q, j);
        }
        for (; j < n; j++) {
            double d = (x[off + j] - k[j]) - m[j];
            q[j] += d * d;
        }
    }

    @Override
    void normalizeColumns(double[] x, double[] y, int off, int n, int c0, double[] mu, double[] lo, double[] is,
            double[] w, double[] b) {
        int j = 0;
        for (int bound = n - n % 4; j < bound; j += 4) {
            int c = c0 + j;
            DoubleVector.fromArray(D, x, off + j).sub(DoubleVector.fromArray(D, mu, c))
                    .sub(DoubleVector.fromArray(D, lo, c)).mul(DoubleVector.fromArray(D, is, c))
                    .mul(DoubleVector.fromArray(D, w, c)).add(DoubleVector.fromArray(D, b, c)).intoArray(y, off + j);
        }
        super.normalizeColumns(x, y, off + j, n - j, c0 + j, mu, lo, is, w, b);
    }
}
