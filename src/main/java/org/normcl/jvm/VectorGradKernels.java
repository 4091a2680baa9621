package org.normcl.jvm;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link GradKernels} on the Vector API, at the width of {@link VectorRowKernels}. Loaded by
 * {@link GradKernels#vectorOrNull()} only when the module is in the boot layer. Reductions keep two
 * vector accumulators per sum, add them in a fixed order and finish with
 * {@link VectorRowKernels#sumLanes}'s fixed tree, then the scalar tail; elementwise tails repeat
 * the vector operations exactly ({@code Math.fma} is the same single rounding).
 */
final class VectorGradKernels extends GradKernels {
    private static final VectorSpecies<Float> S = VectorRowKernels.S;
    private static final int L = S.length();

    /** Scratch for the horizontal sums; this is why an instance belongs to one thread. */
    private final float[] lanes = new float[L];

    @Override
    GradKernels fresh() {
        return new VectorGradKernels();
    }

    @Override
    float rowSums(float[] dy, float[] x, float[] w, int off, int aoff, int n, float mu, float is) {
        float g = 0;
        float q = 0;
        int i = 0;
        if (n >= L) { // short rows (group norm of (N, C) data): the scalar loop alone
            FloatVector muv = FloatVector.broadcast(S, mu);
            FloatVector isv = FloatVector.broadcast(S, is);
            FloatVector g0 = FloatVector.zero(S), g1 = g0, q0 = g0, q1 = g0;
            int bound2 = n - (n % (2 * L));
            for (; i < bound2; i += 2 * L) {
                FloatVector a0 = FloatVector.fromArray(S, dy, off + i).mul(FloatVector.fromArray(S, w, aoff + i));
                FloatVector a1 = FloatVector.fromArray(S, dy, off + i + L)
                        .mul(FloatVector.fromArray(S, w, aoff + i + L));
                g0 = g0.add(a0);
                g1 = g1.add(a1);
                q0 = a0.fma(FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv), q0);
                q1 = a1.fma(FloatVector.fromArray(S, x, off + i + L).sub(muv).mul(isv), q1);
            }
            int bound = n - (n % L);
            for (; i < bound; i += L) {
                FloatVector a0 = FloatVector.fromArray(S, dy, off + i).mul(FloatVector.fromArray(S, w, aoff + i));
                g0 = g0.add(a0);
                q0 = a0.fma(FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv), q0);
            }
            g0.add(g1).intoArray(lanes, 0);
            g = VectorRowKernels.sumLanes(lanes);
            q0.add(q1).intoArray(lanes, 0);
            q = VectorRowKernels.sumLanes(lanes);
        }
        for (; i < n; i++) {
            float a = dy[off + i] * w[aoff + i];
            g += a;
            q = Math.fma(a, (x[off + i] - mu) * is, q);
        }
        second = q;
        return g;
    }

    @Override
    void pairSumsAccumulate(float[] dy, float[] x, float[] w, int offA, int offB, int aoff, int n, float muA,
            float isA, float muB, float isB, float[] fs, float[] fb, float[] sums) {
        if (n % (2 * L) != 0) {
            super.pairSumsAccumulate(dy, x, w, offA, offB, aoff, n, muA, isA, muB, isB, fs, fb, sums);
            return;
        }
        // rowSums' two accumulators per sum and row, in its order; the accumulators take row a, then b.
        FloatVector muAv = FloatVector.broadcast(S, muA);
        FloatVector isAv = FloatVector.broadcast(S, isA);
        FloatVector muBv = FloatVector.broadcast(S, muB);
        FloatVector isBv = FloatVector.broadcast(S, isB);
        FloatVector ga0 = FloatVector.zero(S), ga1 = ga0, qa0 = ga0, qa1 = ga0;
        FloatVector gb0 = ga0, gb1 = ga0, qb0 = ga0, qb1 = ga0;
        for (int i = 0; i < n; i += 2 * L) {
            int j = i + L;
            FloatVector w0 = FloatVector.fromArray(S, w, aoff + i);
            FloatVector w1 = FloatVector.fromArray(S, w, aoff + j);
            FloatVector da0 = FloatVector.fromArray(S, dy, offA + i);
            FloatVector da1 = FloatVector.fromArray(S, dy, offA + j);
            FloatVector db0 = FloatVector.fromArray(S, dy, offB + i);
            FloatVector db1 = FloatVector.fromArray(S, dy, offB + j);
            FloatVector ha0 = FloatVector.fromArray(S, x, offA + i).sub(muAv).mul(isAv);
            FloatVector ha1 = FloatVector.fromArray(S, x, offA + j).sub(muAv).mul(isAv);
            FloatVector hb0 = FloatVector.fromArray(S, x, offB + i).sub(muBv).mul(isBv);
            FloatVector hb1 = FloatVector.fromArray(S, x, offB + j).sub(muBv).mul(isBv);
            FloatVector aa0 = da0.mul(w0);
            FloatVector aa1 = da1.mul(w1);
            FloatVector ab0 = db0.mul(w0);
            FloatVector ab1 = db1.mul(w1);
            ga0 = ga0.add(aa0);
            ga1 = ga1.add(aa1);
            qa0 = aa0.fma(ha0, qa0);
            qa1 = aa1.fma(ha1, qa1);
            gb0 = gb0.add(ab0);
            gb1 = gb1.add(ab1);
            qb0 = ab0.fma(hb0, qb0);
            qb1 = ab1.fma(hb1, qb1);
            db0.fma(hb0, da0.fma(ha0, FloatVector.fromArray(S, fs, aoff + i))).intoArray(fs, aoff + i);
            db1.fma(hb1, da1.fma(ha1, FloatVector.fromArray(S, fs, aoff + j))).intoArray(fs, aoff + j);
            FloatVector.fromArray(S, fb, aoff + i).add(da0).add(db0).intoArray(fb, aoff + i);
            FloatVector.fromArray(S, fb, aoff + j).add(da1).add(db1).intoArray(fb, aoff + j);
        }
        ga0.add(ga1).intoArray(lanes, 0);
        sums[0] = VectorRowKernels.sumLanes(lanes);
        qa0.add(qa1).intoArray(lanes, 0);
        sums[1] = VectorRowKernels.sumLanes(lanes);
        gb0.add(gb1).intoArray(lanes, 0);
        sums[2] = VectorRowKernels.sumLanes(lanes);
        qb0.add(qb1).intoArray(lanes, 0);
        sums[3] = VectorRowKernels.sumLanes(lanes);
    }

    @Override
    void channelDx(float[] dy, float[] x, float[] dx, int off, int n, float mu, float is, float kc, float meanDy,
            float meanDyXhat) {
        FloatVector muv = FloatVector.broadcast(S, mu);
        FloatVector isv = FloatVector.broadcast(S, is);
        FloatVector kcv = FloatVector.broadcast(S, kc);
        FloatVector mdv = FloatVector.broadcast(S, meanDy);
        FloatVector mxv = FloatVector.broadcast(S, meanDyXhat);
        int i = 0;
        for (int bound = n - (n % L); i < bound; i += L) {
            FloatVector xhat = FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv);
            kcv.mul(FloatVector.fromArray(S, dy, off + i).sub(mdv).sub(xhat.mul(mxv))).intoArray(dx, off + i);
        }
        super.channelDx(dy, x, dx, off + i, n - i, mu, is, kc, meanDy, meanDyXhat);
    }

    @Override
    float channelDxThenSums(float[] dy, float[] x, float[] dx, int aOff, float muA, float isA, float kc, float meanDy,
            float meanDyXhat, int sOff, int n, float muB, float isB, float[] ones) {
        if (n % (2 * L) != 0) {
            return super.channelDxThenSums(dy, x, dx, aOff, muA, isA, kc, meanDy, meanDyXhat, sOff, n, muB, isB, ones);
        }
        // channelDx's operations on run a; rowSums' two accumulators per sum on run b, in its order
        // (its dy * 1 is dy itself).
        FloatVector muAv = FloatVector.broadcast(S, muA);
        FloatVector isAv = FloatVector.broadcast(S, isA);
        FloatVector kcv = FloatVector.broadcast(S, kc);
        FloatVector mdv = FloatVector.broadcast(S, meanDy);
        FloatVector mxv = FloatVector.broadcast(S, meanDyXhat);
        FloatVector muBv = FloatVector.broadcast(S, muB);
        FloatVector isBv = FloatVector.broadcast(S, isB);
        FloatVector g0 = FloatVector.zero(S), g1 = g0, q0 = g0, q1 = g0;
        for (int i = 0; i < n; i += 2 * L) {
            int j = i + L;
            FloatVector b0 = FloatVector.fromArray(S, dy, sOff + i);
            FloatVector b1 = FloatVector.fromArray(S, dy, sOff + j);
            g0 = g0.add(b0);
            g1 = g1.add(b1);
            q0 = b0.fma(FloatVector.fromArray(S, x, sOff + i).sub(muBv).mul(isBv), q0);
            q1 = b1.fma(FloatVector.fromArray(S, x, sOff + j).sub(muBv).mul(isBv), q1);
            FloatVector h0 = FloatVector.fromArray(S, x, aOff + i).sub(muAv).mul(isAv);
            FloatVector h1 = FloatVector.fromArray(S, x, aOff + j).sub(muAv).mul(isAv);
            kcv.mul(FloatVector.fromArray(S, dy, aOff + i).sub(mdv).sub(h0.mul(mxv))).intoArray(dx, aOff + i);
            kcv.mul(FloatVector.fromArray(S, dy, aOff + j).sub(mdv).sub(h1.mul(mxv))).intoArray(dx, aOff + j);
        }
        g0.add(g1).intoArray(lanes, 0);
        float g = VectorRowKernels.sumLanes(lanes);
        q0.add(q1).intoArray(lanes, 0);
        second = VectorRowKernels.sumLanes(lanes);
        return g;
    }

    @Override
    void flushTerms(float[] fs, float[] fb, double[] ps, double[] pb, int base, int n, boolean first) {
        // The scalar loop's conversions and additions, a vector at a time: C2 in JDK 17 does not
        // vectorize float-to-double loops, and this flush took 11% of 1024x8192 layer norm
        // backward. Only the species S is loaded and stored (a second float species in
        // FloatVector's shared methods cost the kernels their intrinsics).
        VectorSpecies<Double> d = VectorRowKernels.D;
        int dl = d.length();
        FloatVector zero = FloatVector.zero(S);
        int c = 0;
        for (int bound = n - (n % L); c < bound; c += L) {
            FloatVector s = FloatVector.fromArray(S, fs, c);
            FloatVector b = FloatVector.fromArray(S, fb, c);
            for (int part = 0; part < L / dl; part++) {
                int at = base + c + part * dl;
                DoubleVector sd = (DoubleVector) s.convertShape(VectorOperators.F2D, d, part);
                DoubleVector bd = (DoubleVector) b.convertShape(VectorOperators.F2D, d, part);
                (first ? DoubleVector.zero(d) : DoubleVector.fromArray(d, ps, at)).add(sd).intoArray(ps, at);
                (first ? DoubleVector.zero(d) : DoubleVector.fromArray(d, pb, at)).add(bd).intoArray(pb, at);
            }
            zero.intoArray(fs, c);
            zero.intoArray(fb, c);
        }
        for (; c < n; c++) {
            ps[base + c] = (first ? 0.0 : ps[base + c]) + fs[c];
            pb[base + c] = (first ? 0.0 : pb[base + c]) + fb[c];
            fs[c] = 0f;
            fb[c] = 0f;
        }
    }

    @Override
    void dx(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu, float is, float meanG,
            float meanGx) {
        FloatVector muv = FloatVector.broadcast(S, mu);
        FloatVector isv = FloatVector.broadcast(S, is);
        FloatVector mg = FloatVector.broadcast(S, meanG);
        FloatVector nb = FloatVector.broadcast(S, -meanGx);
        int i = 0;
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector g = FloatVector.fromArray(S, dy, off + i).mul(FloatVector.fromArray(S, w, aoff + i));
            FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv).fma(nb, g.sub(mg)).mul(isv).intoArray(dx, off + i);
        }
        float nbs = -meanGx;
        for (; i < n; i++) {
            float xhat = (x[off + i] - mu) * is;
            dx[off + i] = Math.fma(xhat, nbs, dy[off + i] * w[aoff + i] - meanG) * is;
        }
    }

    @Override
    void dxAccumulate(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu, float is,
            float meanG, float meanGx, float[] fs, float[] fb) {
        FloatVector muv = FloatVector.broadcast(S, mu);
        FloatVector isv = FloatVector.broadcast(S, is);
        FloatVector mg = FloatVector.broadcast(S, meanG);
        FloatVector nb = FloatVector.broadcast(S, -meanGx);
        int i = 0;
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, dy, off + i);
            FloatVector xhat = FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv);
            xhat.fma(nb, d.mul(FloatVector.fromArray(S, w, aoff + i)).sub(mg)).mul(isv).intoArray(dx, off + i);
            d.fma(xhat, FloatVector.fromArray(S, fs, aoff + i)).intoArray(fs, aoff + i);
            FloatVector.fromArray(S, fb, aoff + i).add(d).intoArray(fb, aoff + i);
        }
        float nbs = -meanGx;
        for (; i < n; i++) {
            float d = dy[off + i];
            float xhat = (x[off + i] - mu) * is;
            dx[off + i] = Math.fma(xhat, nbs, d * w[aoff + i] - meanG) * is;
            fs[aoff + i] = Math.fma(d, xhat, fs[aoff + i]);
            fb[aoff + i] += d;
        }
    }

    @Override
    void accumulate(float[] dy, float[] x, int off, int aoff, int n, float mu, float is, float[] fs, float[] fb) {
        FloatVector muv = FloatVector.broadcast(S, mu);
        FloatVector isv = FloatVector.broadcast(S, is);
        int i = 0;
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, dy, off + i);
            FloatVector xhat = FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv);
            d.fma(xhat, FloatVector.fromArray(S, fs, aoff + i)).intoArray(fs, aoff + i);
            FloatVector.fromArray(S, fb, aoff + i).add(d).intoArray(fb, aoff + i);
        }
        for (; i < n; i++) {
            float d = dy[off + i];
            fs[aoff + i] = Math.fma(d, (x[off + i] - mu) * is, fs[aoff + i]);
            fb[aoff + i] += d;
        }
    }

    @Override
    void accumulateColumns(float[] dy, float[] x, int off, int n, float[] mean, float[] inv, float[] fs,
            float[] fb) {
        int i = 0;
        for (int bound = n - (n % L); i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, dy, off + i);
            FloatVector xhat = FloatVector.fromArray(S, x, off + i).sub(FloatVector.fromArray(S, mean, i))
                    .mul(FloatVector.fromArray(S, inv, i));
            d.fma(xhat, FloatVector.fromArray(S, fs, i)).intoArray(fs, i);
            FloatVector.fromArray(S, fb, i).add(d).intoArray(fb, i);
        }
        for (; i < n; i++) {
            float d = dy[off + i];
            fs[i] = Math.fma(d, (x[off + i] - mean[i]) * inv[i], fs[i]);
            fb[i] += d;
        }
    }

    @Override
    void columnDx(float[] dy, float[] x, float[] dx, int off, int n, float[] mean, float[] inv, float[] ks,
            float[] meanDy, float[] meanDyXhat) {
        int c = 0;
        for (int bound = n - (n % L); c < bound; c += L) {
            FloatVector xhat = FloatVector.fromArray(S, x, off + c).sub(FloatVector.fromArray(S, mean, c))
                    .mul(FloatVector.fromArray(S, inv, c));
            FloatVector.fromArray(S, dy, off + c).sub(FloatVector.fromArray(S, meanDy, c))
                    .sub(xhat.mul(FloatVector.fromArray(S, meanDyXhat, c))).mul(FloatVector.fromArray(S, ks, c))
                    .intoArray(dx, off + c);
        }
        for (; c < n; c++) {
            float xhat = (x[off + c] - mean[c]) * inv[c];
            dx[off + c] = ks[c] * (dy[off + c] - meanDy[c] - xhat * meanDyXhat[c]);
        }
    }

    @Override
    void columnDxNoSums(float[] dy, float[] dx, int off, int n, float[] ks) {
        int c = 0;
        for (int bound = n - (n % L); c < bound; c += L) {
            FloatVector.fromArray(S, dy, off + c).mul(FloatVector.fromArray(S, ks, c)).intoArray(dx, off + c);
        }
        for (; c < n; c++) {
            dx[off + c] = dy[off + c] * ks[c];
        }
    }

    @Override
    void singleValueRows(float[] dy, float[] x, float[] w, float[] mean, float[] inv, float[] dx, int off, int c0,
            int n, boolean rms, float[] fs, float[] fb) {
        FloatVector zero = FloatVector.zero(S);
        int c = c0;
        for (int bound = n - ((n - c0) % L); c < bound; c += L) {
            int i = off + c;
            FloatVector d = FloatVector.fromArray(S, dy, i);
            FloatVector is = FloatVector.fromArray(S, inv, i);
            FloatVector xv = FloatVector.fromArray(S, x, i);
            FloatVector xhat = (rms ? xv.sub(zero) : xv.sub(FloatVector.fromArray(S, mean, i))).mul(is);
            if (dx != null) {
                FloatVector g = d.mul(FloatVector.fromArray(S, w, c));
                FloatVector q = g.fma(xhat, zero);
                xhat.fma(q.neg(), g.sub(rms ? zero : zero.add(g))).mul(is).intoArray(dx, i);
            }
            d.fma(xhat, FloatVector.fromArray(S, fs, c)).intoArray(fs, c);
            FloatVector.fromArray(S, fb, c).add(d).intoArray(fb, c);
        }
        super.singleValueRows(dy, x, w, mean, inv, dx, off, c, n, rms, fs, fb);
    }

    /**
     * A vector of L / c rows at a time where c <= L and c <= 8 (each segment of c lanes a row, its
     * statistics spread over it); rows of 1, 2, 4 or 8 whole vectors with the row in registers
     * ({@link #registerRows}); the rest row by row. The same operations as the plain loops.
     */
    @Override
    void smallRows(float[] dy, float[] x, float[] w, float[] mean, float[] inv, float[] dx, int off, int from, int n,
            int c, boolean rms, float[] fs, float[] fb) {
        int a = from;
        if (dx != null && (c > L || c > 8) && c % L == 0 && c / L <= 8) {
            registerRows(dy, x, w, rms ? null : mean, inv, dx, off, from, n, c, rms, fs, fb);
            return;
        }
        if (c <= L) {
            FloatVector zero = FloatVector.zero(S);
            FloatVector invC = FloatVector.broadcast(S, 1f / c);
            int shift = Integer.numberOfTrailingZeros(c);
            for (int bound = n - (n - a) % L; a < bound; a += L) {
                int i = off + a;
                int r = i >> shift;
                FloatVector d = FloatVector.fromArray(S, dy, i);
                // The vector's rows' statistics, each over its segment of c lanes.
                FloatVector is = FloatVector.broadcast(S, inv[r]);
                FloatVector mu = rms ? zero : FloatVector.broadcast(S, mean[r]);
                for (int j = 1; j < L / c; j++) {
                    VectorMask<Float> rest = VectorRowKernels.FROM[j * c];
                    is = is.blend(FloatVector.broadcast(S, inv[r + j]), rest);
                    if (!rms) {
                        mu = mu.blend(FloatVector.broadcast(S, mean[r + j]), rest);
                    }
                }
                FloatVector xhat = FloatVector.fromArray(S, x, i).sub(mu).mul(is);
                if (dx != null) {
                    FloatVector g = d.mul(FloatVector.fromArray(S, w, a));
                    FloatVector meanG = zero;
                    if (!rms) {
                        FloatVector t = g;
                        if (c >= 8) {
                            t = t.add(t.rearrange(VectorRowKernels.XOR4));
                        }
                        if (c >= 4) {
                            t = t.add(t.rearrange(VectorRowKernels.XOR2));
                        }
                        meanG = t.add(t.rearrange(VectorRowKernels.XOR1)).mul(invC);
                    }
                    // The same levels again, written out: a vector passed to a call the JIT does not inline is boxed.
                    FloatVector q = g.mul(xhat);
                    if (c >= 8) {
                        q = q.add(q.rearrange(VectorRowKernels.XOR4));
                    }
                    if (c >= 4) {
                        q = q.add(q.rearrange(VectorRowKernels.XOR2));
                    }
                    FloatVector meanGx = q.add(q.rearrange(VectorRowKernels.XOR1)).mul(invC);
                    xhat.fma(meanGx.neg(), g.sub(meanG)).mul(is).intoArray(dx, i);
                }
                d.fma(xhat, FloatVector.fromArray(S, fs, a)).intoArray(fs, a);
                FloatVector.fromArray(S, fb, a).add(d).intoArray(fb, a);
            }
        }
        super.smallRows(dy, x, w, mean, inv, dx, off, a, n, c, rms, fs, fb);
    }

    /**
     * {@link #smallRows} with dx of rows of c = nv * L values, nv 1, 2, 4 or 8: a row's dY and X read once
     * into registers, the halving tree's vector levels written out, then its lane levels as
     * butterflies (the order of {@link VectorRowKernels#sumLanes}), so the bits are the plain twin's.
     * The forward's {@code VectorRowKernels.registerRows} takes the statistics in the same tree.
     */
    private void registerRows(float[] dy, float[] x, float[] w, float[] mean, float[] inv, float[] dx, int off,
            int from, int n, int c, boolean rms, float[] fs, float[] fb) {
        int nv = c / L;
        int shift = Integer.numberOfTrailingZeros(c);
        FloatVector invC = FloatVector.broadcast(S, 1f / c);
        // Vector j of a row at offset oj = min(j, nv - 1) * L. Where j >= nv its code never runs, but C2
        // hoists the bounds checks of blocks its profile saw always taken (at a longer row) ahead of the
        // loop; one that failed sent every later call to the interpreter until C2 recompiled (20-118 ms
        // instead of 3; docs/performance.md). Clamped, every check holds at every row length.
        int o1 = Math.min(1, nv - 1) * L;
        int o2 = Math.min(2, nv - 1) * L;
        int o3 = Math.min(3, nv - 1) * L;
        int o4 = Math.min(4, nv - 1) * L;
        int o5 = Math.min(5, nv - 1) * L;
        int o6 = Math.min(6, nv - 1) * L;
        int o7 = Math.min(7, nv - 1) * L;
        // RMS norm's absent means read lanes[0] (an index masked to 0), not behind a null test that C2
        // may hoist ahead of the loop and then fail on every call of the other kind.
        float[] meanIn = mean != null ? mean : lanes;
        int meanMask = mean != null ? -1 : 0;
        FloatVector zero = FloatVector.zero(S);
        for (int a = from; a < n; a += c) {
            int i = off + a;
            int r = i >> shift;
            FloatVector mu = rms ? zero : FloatVector.broadcast(S, meanIn[r & meanMask]);
            FloatVector is = FloatVector.broadcast(S, inv[r]);
            // Vector j of the row at i + j * L; absent vectors are zeros the code below never stores.
            FloatVector d0 = FloatVector.fromArray(S, dy, i);
            FloatVector d1 = nv >= 2 ? FloatVector.fromArray(S, dy, i + o1) : zero;
            FloatVector d2 = nv >= 4 ? FloatVector.fromArray(S, dy, i + o2) : zero;
            FloatVector d3 = nv >= 4 ? FloatVector.fromArray(S, dy, i + o3) : zero;
            FloatVector d4 = nv == 8 ? FloatVector.fromArray(S, dy, i + o4) : zero;
            FloatVector d5 = nv == 8 ? FloatVector.fromArray(S, dy, i + o5) : zero;
            FloatVector d6 = nv == 8 ? FloatVector.fromArray(S, dy, i + o6) : zero;
            FloatVector d7 = nv == 8 ? FloatVector.fromArray(S, dy, i + o7) : zero;
            FloatVector h0 = FloatVector.fromArray(S, x, i).sub(mu).mul(is);
            FloatVector h1 = nv >= 2 ? FloatVector.fromArray(S, x, i + o1).sub(mu).mul(is) : zero;
            FloatVector h2 = nv >= 4 ? FloatVector.fromArray(S, x, i + o2).sub(mu).mul(is) : zero;
            FloatVector h3 = nv >= 4 ? FloatVector.fromArray(S, x, i + o3).sub(mu).mul(is) : zero;
            FloatVector h4 = nv == 8 ? FloatVector.fromArray(S, x, i + o4).sub(mu).mul(is) : zero;
            FloatVector h5 = nv == 8 ? FloatVector.fromArray(S, x, i + o5).sub(mu).mul(is) : zero;
            FloatVector h6 = nv == 8 ? FloatVector.fromArray(S, x, i + o6).sub(mu).mul(is) : zero;
            FloatVector h7 = nv == 8 ? FloatVector.fromArray(S, x, i + o7).sub(mu).mul(is) : zero;
            // The parameter-gradient terms first (fs += dy * xhat fused, fb += dy): dY is then dead but in g.
            d0.fma(h0, FloatVector.fromArray(S, fs, a)).intoArray(fs, a);
            FloatVector.fromArray(S, fb, a).add(d0).intoArray(fb, a);
            if (nv >= 2) {
                d1.fma(h1, FloatVector.fromArray(S, fs, a + o1)).intoArray(fs, a + o1);
                FloatVector.fromArray(S, fb, a + o1).add(d1).intoArray(fb, a + o1);
            }
            if (nv >= 4) {
                d2.fma(h2, FloatVector.fromArray(S, fs, a + o2)).intoArray(fs, a + o2);
                FloatVector.fromArray(S, fb, a + o2).add(d2).intoArray(fb, a + o2);
                d3.fma(h3, FloatVector.fromArray(S, fs, a + o3)).intoArray(fs, a + o3);
                FloatVector.fromArray(S, fb, a + o3).add(d3).intoArray(fb, a + o3);
            }
            if (nv == 8) {
                d4.fma(h4, FloatVector.fromArray(S, fs, a + o4)).intoArray(fs, a + o4);
                FloatVector.fromArray(S, fb, a + o4).add(d4).intoArray(fb, a + o4);
                d5.fma(h5, FloatVector.fromArray(S, fs, a + o5)).intoArray(fs, a + o5);
                FloatVector.fromArray(S, fb, a + o5).add(d5).intoArray(fb, a + o5);
                d6.fma(h6, FloatVector.fromArray(S, fs, a + o6)).intoArray(fs, a + o6);
                FloatVector.fromArray(S, fb, a + o6).add(d6).intoArray(fb, a + o6);
                d7.fma(h7, FloatVector.fromArray(S, fs, a + o7)).intoArray(fs, a + o7);
                FloatVector.fromArray(S, fb, a + o7).add(d7).intoArray(fb, a + o7);
            }
            FloatVector g0 = d0.mul(FloatVector.fromArray(S, w, a));
            FloatVector g1 = nv >= 2 ? d1.mul(FloatVector.fromArray(S, w, a + o1)) : zero;
            FloatVector g2 = nv >= 4 ? d2.mul(FloatVector.fromArray(S, w, a + o2)) : zero;
            FloatVector g3 = nv >= 4 ? d3.mul(FloatVector.fromArray(S, w, a + o3)) : zero;
            FloatVector g4 = nv == 8 ? d4.mul(FloatVector.fromArray(S, w, a + o4)) : zero;
            FloatVector g5 = nv == 8 ? d5.mul(FloatVector.fromArray(S, w, a + o5)) : zero;
            FloatVector g6 = nv == 8 ? d6.mul(FloatVector.fromArray(S, w, a + o6)) : zero;
            FloatVector g7 = nv == 8 ? d7.mul(FloatVector.fromArray(S, w, a + o7)) : zero;
            // The tree's lane levels as butterflies (lane i adds lane i ^ h, h = L/2, ..., 1; the order
            // of sumLanes), so every lane holds the total, no trip through memory. Written out: a helper
            // was past C2's inlining budget in a method this size, and then boxed its vectors.
            FloatVector mg = zero;
            if (!rms) {
                FloatVector u = nv == 8 ? g0.add(g4).add(g2.add(g6)).add(g1.add(g5).add(g3.add(g7)))
                        : nv == 4 ? g0.add(g2).add(g1.add(g3)) : nv == 2 ? g0.add(g1) : g0;
                if (L > 8) {
                    u = u.add(u.rearrange(VectorRowKernels.XOR8));
                }
                if (L > 4) {
                    u = u.add(u.rearrange(VectorRowKernels.XOR4));
                }
                u = u.add(u.rearrange(VectorRowKernels.XOR2));
                mg = u.add(u.rearrange(VectorRowKernels.XOR1)).mul(invC);
            }
            FloatVector v = nv == 8
                    ? g0.mul(h0).add(g4.mul(h4)).add(g2.mul(h2).add(g6.mul(h6)))
                            .add(g1.mul(h1).add(g5.mul(h5)).add(g3.mul(h3).add(g7.mul(h7))))
                    : nv == 4 ? g0.mul(h0).add(g2.mul(h2)).add(g1.mul(h1).add(g3.mul(h3)))
                    : nv == 2 ? g0.mul(h0).add(g1.mul(h1)) : g0.mul(h0);
            if (L > 8) {
                v = v.add(v.rearrange(VectorRowKernels.XOR8));
            }
            if (L > 4) {
                v = v.add(v.rearrange(VectorRowKernels.XOR4));
            }
            v = v.add(v.rearrange(VectorRowKernels.XOR2));
            FloatVector nmgx = v.add(v.rearrange(VectorRowKernels.XOR1)).mul(invC).neg();
            h0.fma(nmgx, g0.sub(mg)).mul(is).intoArray(dx, i);
            if (nv >= 2) {
                h1.fma(nmgx, g1.sub(mg)).mul(is).intoArray(dx, i + o1);
            }
            if (nv >= 4) {
                h2.fma(nmgx, g2.sub(mg)).mul(is).intoArray(dx, i + o2);
                h3.fma(nmgx, g3.sub(mg)).mul(is).intoArray(dx, i + o3);
            }
            if (nv == 8) {
                h4.fma(nmgx, g4.sub(mg)).mul(is).intoArray(dx, i + o4);
                h5.fma(nmgx, g5.sub(mg)).mul(is).intoArray(dx, i + o5);
                h6.fma(nmgx, g6.sub(mg)).mul(is).intoArray(dx, i + o6);
                h7.fma(nmgx, g7.sub(mg)).mul(is).intoArray(dx, i + o7);
            }
        }
    }

    @Override
    void dxUniform(float[] dy, float[] x, float[] dx, int off, int n, float mu, float is, float w, float meanG,
            float meanGx) {
        // dy * w - meanG in one fused step: the scale is one value for the whole range.
        FloatVector wv = FloatVector.broadcast(S, w);
        FloatVector nmg = FloatVector.broadcast(S, -meanG);
        FloatVector nb = FloatVector.broadcast(S, -meanGx);
        FloatVector muv = FloatVector.broadcast(S, mu);
        FloatVector isv = FloatVector.broadcast(S, is);
        int bound = n - (n % L);
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector g = FloatVector.fromArray(S, dy, off + i).fma(wv, nmg);
            FloatVector.fromArray(S, x, off + i).sub(muv).mul(isv).fma(nb, g).mul(isv).intoArray(dx, off + i);
        }
        for (; i < n; i++) {
            dx[off + i] = Math.fma((x[off + i] - mu) * is, -meanGx, Math.fma(dy[off + i], w, -meanG)) * is;
        }
    }
}
