package org.normcl.jvm;

/**
 * The inner loops of the Java backend's row backward passes ({@link JavaBackward}), in float32:
 * {@link VectorGradKernels} on the Vector API when {@link RowKernels#best()} is the vector
 * implementation, {@link ScalarGradKernels} otherwise.
 *
 * <p>With {@code xhat = (x - mu) * is} and {@code g = dy * w}:
 * <ul>
 *   <li>the reductions ({@link #rowSums}) add at most {@link RowKernels#RUN}
 *       values in float32, in an order fixed by the implementation and the run length (callers merge
 *       runs in double precision);
 *   <li>{@code dx = fma(xhat, -meanGx, g - meanG) * is};
 *   <li>the parameter-gradient accumulators take {@code fs[a] = fma(dy, xhat, fs[a])} and
 *       {@code fb[a] = fb[a] + dy}: the same operations whether or not dx is computed in the same
 *       loop, so a fused pass and a parameter-gradient-only pass give the same bits.
 * </ul>
 * An instance is used by one thread at a time (it may hold scratch space): call {@link #fresh()}
 * for each task.
 */
abstract class GradKernels {
    private static final GradKernels BEST = pickBest();

    private static GradKernels pickBest() {
        if (RowKernels.best().lanes() > 1) {
            GradKernels v = vectorOrNull();
            if (v != null) {
                return v;
            }
        }
        return new ScalarGradKernels();
    }

    /** @return the kernels matching {@link RowKernels#best()} (a prototype: call {@link #fresh()} per task) */
    static GradKernels best() {
        return BEST;
    }

    /** @return the Vector API kernels, or null when {@link RowKernels#vectorOrNull()} is */
    static GradKernels vectorOrNull() {
        if (RowKernels.vectorOrNull() == null) {
            return null;
        }
        try {
            return (GradKernels) Class.forName("org.normcl.jvm.VectorGradKernels").getDeclaredConstructor()
                    .newInstance();
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            return null;
        }
    }

    /** @return a new instance of the same implementation, for one task */
    abstract GradKernels fresh();

    /** The second sum of the last {@link #rowSums} call. */
    float second;

    /**
     * @return {@code sum g} over {@code [off, off + n)} ({@code n <= RUN}), the affine index starting
     *     at {@code aoff}; {@code sum g * xhat} is left in {@link #second}
     */
    abstract float rowSums(float[] dy, float[] x, float[] w, int off, int aoff, int n, float mu, float is);

    /**
     * dx over {@code [off, off + n)} (any n) with one affine entry per value (index from {@code aoff}),
     * adding each value's {@code dy * xhat} and {@code dy} into {@code fs[aoff + i]} and {@code fb[aoff + i]}.
     */
    abstract void dxAccumulate(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu,
            float is, float meanG, float meanGx, float[] fs, float[] fb);

    /**
     * The first pass over one run of two rows at once ({@code n <= RUN}, the same affine run from
     * {@code aoff}): {@code sums[0..1]} = {@link #rowSums} of row a (its sum g and {@link #second}),
     * {@code sums[2..3]} = those of row b, and {@link #accumulate} of row a, then of row b, each bit
     * for bit. One read of the run's scale and one update of the accumulators serve both rows.
     */
    void pairSumsAccumulate(float[] dy, float[] x, float[] w, int offA, int offB, int aoff, int n, float muA,
            float isA, float muB, float isB, float[] fs, float[] fb, float[] sums) {
        accumulate(dy, x, offA, aoff, n, muA, isA, fs, fb);
        accumulate(dy, x, offB, aoff, n, muB, isB, fs, fb);
        sums[0] = rowSums(dy, x, w, offA, aoff, n, muA, isA);
        sums[1] = second;
        sums[2] = rowSums(dy, x, w, offB, aoff, n, muB, isB);
        sums[3] = second;
    }

    /**
     * Batch-norm training dx over {@code [off, off + n)} of one channel:
     * {@code dx = kc * ((dy - meanDy) - xhat * meanDyXhat)}, {@code xhat = (x - mu) * is}, with no
     * fused multiply-add (as the formula reads in Java).
     */
    void channelDx(float[] dy, float[] x, float[] dx, int off, int n, float mu, float is, float kc, float meanDy,
            float meanDyXhat) {
        for (int i = off; i < off + n; i++) {
            float xhat = (x[i] - mu) * is;
            dx[i] = kc * (dy[i] - meanDy - xhat * meanDyXhat);
        }
    }

    /**
     * One run of a software pipeline over channels ({@code n <= RUN}): the {@link #channelDx} of the
     * run at {@code aOff} (a channel whose sums are done, its values in cache), then the
     * {@link #rowSums} of the run at {@code sOff} with unit scale ({@code ones}, at least n long), each
     * bit for bit; the next channel's values stream in while dx is written.
     */
    float channelDxThenSums(float[] dy, float[] x, float[] dx, int aOff, float muA, float isA, float kc, float meanDy,
            float meanDyXhat, int sOff, int n, float muB, float isB, float[] ones) {
        channelDx(dy, x, dx, aOff, n, muA, isA, kc, meanDy, meanDyXhat);
        return rowSums(dy, x, ones, sOff, 0, n, muB, isB);
    }

    /**
     * Adds the float32 parameter-gradient terms {@code fs[0, n)} and {@code fb[0, n)} into the
     * double partial sums at {@code ps[base, base + n)} and {@code pb[...]} ({@code first}: stores
     * them, as if added to zeros) and zeroes {@code fs} and {@code fb}, in one pass.
     */
    void flushTerms(float[] fs, float[] fb, double[] ps, double[] pb, int base, int n, boolean first) {
        for (int c = 0; c < n; c++) {
            ps[base + c] = (first ? 0.0 : ps[base + c]) + fs[c];
            pb[base + c] = (first ? 0.0 : pb[base + c]) + fb[c];
            fs[c] = 0f;
            fb[c] = 0f;
        }
    }

    /** The dx of {@link #dxAccumulate} alone (no accumulators), bit for bit. */
    abstract void dx(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu, float is,
            float meanG, float meanGx);

    /** {@link #dxAccumulate} without dx: the parameter-gradient accumulation only, bit for bit. */
    abstract void accumulate(float[] dy, float[] x, int off, int aoff, int n, float mu, float is, float[] fs,
            float[] fb);

    /**
     * {@code fs[i] = fma(dy, (x - mean[i]) * inv[i], fs[i])} and {@code fb[i] = fb[i] + dy} for the values
     * {@code [off, off + n)}, i from 0: one row of (N, C) data with a statistic per column.
     */
    abstract void accumulateColumns(float[] dy, float[] x, int off, int n, float[] mean, float[] inv, float[] fs,
            float[] fb);

    /**
     * One row of (N, C) batch-norm dx, a statistic per column {@code c < n}:
     * {@code dx[off + c] = ks[c] * ((dy - meanDy[c]) - xhat * meanDyXhat[c])},
     * {@code xhat = (x[off + c] - mean[c]) * inv[c]}, with no fused multiply-add (as the formula reads in Java).
     */
    void columnDx(float[] dy, float[] x, float[] dx, int off, int n, float[] mean, float[] inv, float[] ks,
            float[] meanDy, float[] meanDyXhat) {
        for (int c = 0; c < n; c++) {
            float xhat = (x[off + c] - mean[c]) * inv[c];
            dx[off + c] = ks[c] * (dy[off + c] - meanDy[c] - xhat * meanDyXhat[c]);
        }
    }

    /** {@link #columnDx} of inference (no batch sums): {@code dx[off + c] = dy[off + c] * ks[c]}. */
    void columnDxNoSums(float[] dy, float[] dx, int off, int n, float[] ks) {
        for (int c = 0; c < n; c++) {
            dx[off + c] = dy[off + c] * ks[c];
        }
    }

    /**
     * Rows of c values (c a power of two, 2 to 64) of one outer index whose values start at {@code off}
     * (value i of it taking affine entry i): its values {@code off + i} for i in {@code [from, n)},
     * {@code from} a multiple of c, row {@code (off + i) / c}. Per row, with {@code xhat = (x - mu) * is}
     * and {@code g = dy * w}: {@code meanG = T(g) / c} (RMS: 0) and {@code meanGx = T(g * xhat) / c},
     * T the halving tree of {@link RowKernels#halvingSum} (an order independent of the vector width),
     * {@code dx = fma(xhat, -meanGx, g - meanG) * is} (when {@code dx} is not null), and the accumulators
     * as everywhere. Every implementation does these operations, so the bits are the same.
     */
    void smallRows(float[] dy, float[] x, float[] w, float[] mean, float[] inv, float[] dx, int off, int from, int n,
            int c, boolean rms, float[] fs, float[] fb) {
        float[] g = new float[c];
        float[] gx = new float[c];
        float invC = 1f / c;
        for (int a = from; a < n; a += c) {
            int i0 = off + a;
            int r = i0 / c;
            float mu = rms ? 0f : mean[r];
            float is = inv[r];
            float meanG = 0f;
            float meanGx = 0f;
            if (dx != null) {
                for (int i = 0; i < c; i++) {
                    g[i] = dy[i0 + i] * w[a + i];
                    gx[i] = g[i] * ((x[i0 + i] - mu) * is);
                }
                meanG = rms ? 0f : RowKernels.halvingSum(g, c) * invC;
                meanGx = RowKernels.halvingSum(gx, c) * invC;
            }
            plainDxAccumulate(dy, x, w, dx, i0, a, c, mu, is, meanG, meanGx, fs, fb);
        }
    }

    /**
     * dx of one row in plain loops (when {@code dx} is not null), values {@code [off, off + n)} taking
     * affine entries from {@code aoff}, and the accumulators' terms: the operations every
     * implementation does elementwise.
     */
    static void plainDxAccumulate(float[] dy, float[] x, float[] w, float[] dx, int off, int aoff, int n, float mu,
            float is, float meanG, float meanGx, float[] fs, float[] fb) {
        for (int i = 0; i < n; i++) {
            float d = dy[off + i];
            float xhat = (x[off + i] - mu) * is;
            if (dx != null) {
                dx[off + i] = RowKernels.fma(xhat, -meanGx, d * w[aoff + i] - meanG) * is;
            }
            fs[aoff + i] = RowKernels.fma(d, xhat, fs[aoff + i]);
            fb[aoff + i] += d;
        }
    }

    /**
     * Rows of one value each, rows (and values) {@code off + c} for {@code c} in {@code [c0, n)}, row
     * {@code off + c} taking affine entry {@code c} (group and instance norm of (N, C) data with one
     * channel per group): {@code JavaBackward}'s short-row loops for rows of one value, bit for bit
     * (signed zeros included). With {@code xhat = (x - mean) * inv}, {@code g = dy * w} and
     * {@code meanG = 0 + g} (RMS: 0): {@code q = fma(g, xhat, 0)},
     * {@code dx = fma(xhat, -q, g - meanG) * inv} (when {@code dx} is not null), and the accumulators
     * {@code fs[c] = fma(dy, xhat, fs[c])}, {@code fb[c] = fb[c] + dy}.
     */
    void singleValueRows(float[] dy, float[] x, float[] w, float[] mean, float[] inv, float[] dx, int off, int c0,
            int n, boolean rms, float[] fs, float[] fb) {
        for (int c = c0; c < n; c++) {
            int i = off + c;
            float d = dy[i];
            float is = inv[i];
            float xhat = (x[i] - (rms ? 0f : mean[i])) * is;
            if (dx != null) {
                float g = d * w[c];
                float q = RowKernels.fma(g, xhat, 0f);
                dx[i] = RowKernels.fma(xhat, -q, g - (rms ? 0f : 0f + g)) * is;
            }
            fs[c] = RowKernels.fma(d, xhat, fs[c]);
            fb[c] += d;
        }
    }

    /** dx over {@code [off, off + n)} (any n) with one scale {@code w} for the range, {@code g - meanG} fused. */
    abstract void dxUniform(float[] dy, float[] x, float[] dx, int off, int n, float mu, float is, float w,
            float meanG, float meanGx);
}
