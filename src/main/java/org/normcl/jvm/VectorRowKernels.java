package org.normcl.jvm;

import java.util.Arrays;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernels on the Vector API ({@code jdk.incubator.vector}), at most 256 bits wide by default (8
 * float lanes with AVX2 or AVX-512; {@link #DEFAULT_MAX_BITS} says why) or at the width
 * {@code -Dnormcl.vector.bits} names. Loaded by {@link RowKernels#vectorOrNull()} only when the
 * module is in the boot layer, so the rest of the backend never links against it.
 *
 * <p>The kernels are bound by floating-point throughput once the data is in cache, so they use
 * fused multiply-adds ({@code fma}: one rounding instead of two, never less accurate) and skip the
 * subtractions of a zero shift and mean (RMS norm), which are exact no-ops. Reductions keep four
 * vector accumulators (4 x lanes independent sums, enough to cover the add latency), add them in a
 * fixed order and finish with a fixed pairwise tree over the lanes (written out rather than
 * {@code reduceLanes}, whose float order the Vector API leaves unspecified), so results are
 * reproducible bit for bit. The fused kernels repeat the single-pass kernels' operations exactly.
 */
final class VectorRowKernels extends RowKernels {
    /** The species every Vector API kernel of the backend uses (also {@link VectorGradKernels}). */
    static final VectorSpecies<Float> S = species(Integer.getInteger(VECTOR_BITS_PROPERTY, 0));
    private static final int L = S.length();
    /** Doubles in a vector of {@link #S}'s size (also {@link VectorGradKernels}). */
    static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED.withShape(S.vectorShape());

    /**
     * The widest vectors the kernels use unless {@code -Dnormcl.vector.bits} asks for more: a
     * measured choice. On an AVX-512 host (AMD EPYC, Zen 5, 2026-11-27) 256-bit kernels were faster
     * in 30 of 35 paired measurements of layer and RMS norm forward (JVMs alternating; 10-30% less
     * time at 8192x1024 on two threads), in 10 of 12 of group and instance norm and in most of the
     * backward passes; batch norm was mixed. A likely part of the reason: large Java arrays start 16
     * bytes past a 64-byte cache line (G1 puts them at a region's start, after the 16-byte header),
     * so every 512-bit load and store of a row splits two lines, where half of the 256-bit ones do.
     * See docs/performance.md, "2026-11-27, 14:40-15:00 UTC".
     */
    static final int DEFAULT_MAX_BITS = 256;

    /** @return the species of {@code bits} (128, 256 or 512) when supported, else {@link #defaultSpecies} */
    private static VectorSpecies<Float> species(int bits) {
        VectorSpecies<Float> preferred = FloatVector.SPECIES_PREFERRED;
        if (bits == 128 || bits == 256 || (bits == 512 && preferred.vectorBitSize() >= 512)) {
            return bits == 128 ? FloatVector.SPECIES_128
                    : bits == 256 ? FloatVector.SPECIES_256 : FloatVector.SPECIES_512;
        }
        return defaultSpecies(preferred);
    }

    /** @return {@code preferred}, or the 256-bit species where that is wider ({@link #DEFAULT_MAX_BITS}) */
    static VectorSpecies<Float> defaultSpecies(VectorSpecies<Float> preferred) {
        return preferred.vectorBitSize() > DEFAULT_MAX_BITS
                ? VectorSpecies.of(float.class, VectorShape.forBitSize(DEFAULT_MAX_BITS)) : preferred;
    }

    /** Scratch for the horizontal sums; this is why an instance belongs to one thread. */
    private final float[] lanes = new float[L];

    @Override
    RowKernels fresh() {
        return new VectorRowKernels();
    }

    @Override
    String name() {
        return "vector-" + L;
    }

    @Override
    int lanes() {
        return L;
    }

    /**
     * The pairwise sum, in a fixed order, of the L lanes a vector stored into {@code t} (the callers
     * write {@code v.intoArray(t, 0)} first). No helper takes a vector argument: where the JIT does
     * not inline such a call (a large kernel can exhaust its inlining budget), the vector is boxed,
     * a heap allocation per call, and on fresh heap pages every allocation costs a page fault (the
     * 512x65536 layer norm backward ran at 55 ms instead of 30 until the heap's pages were reused).
     */
    static float sumLanes(float[] t) {
        // The loop at the end, unrolled for the usual widths: the same additions in the same order,
        // kept in registers. The loop stores each level into t and loads it back, a store-forwarding
        // round trip per level on every row: at 8 lanes, 65536x128 layer norm took 2.5-2.7 ms
        // unrolled against 3.0-3.5 ms looped, RMS norm 1.7-1.9 against 2.2 (docs/performance.md).
        if (L == 16) {
            float s0 = (t[0] + t[8]) + (t[4] + t[12]);
            float s1 = (t[1] + t[9]) + (t[5] + t[13]);
            float s2 = (t[2] + t[10]) + (t[6] + t[14]);
            float s3 = (t[3] + t[11]) + (t[7] + t[15]);
            return (s0 + s2) + (s1 + s3);
        }
        if (L == 8) {
            return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
        }
        if (L == 4) {
            return (t[0] + t[2]) + (t[1] + t[3]);
        }
        for (int h = L >> 1; h > 0; h >>= 1) {
            for (int i = 0; i < h; i++) {
                t[i] += t[i + h];
            }
        }
        return t[0];
    }

    /** @return whether {@code ((x - k) - m)} is {@code x} for every x: both are +0.0f */
    private static boolean noShift(float k, float m) {
        return Float.floatToRawIntBits(k) == 0 && Float.floatToRawIntBits(m) == 0;
    }

    @Override
    void widen(short[] bits, int bitsOff, float[] f, int fOff, int n, boolean half) {
        if (half) {
            VectorHalfConversions.widenHalf(bits, bitsOff, f, fOff, n);
        } else {
            VectorHalfConversions.widenBfloat16(bits, bitsOff, f, fOff, n);
        }
    }

    @Override
    void round(float[] f, int fOff, short[] bits, int bitsOff, int n, boolean half) {
        if (half) {
            VectorHalfConversions.roundHalf(f, fOff, bits, bitsOff, n);
        } else {
            VectorHalfConversions.roundBfloat16(f, fOff, bits, bitsOff, n);
        }
    }

    // ------------------------------------------------------------------ reductions

    @Override
    float sumSquaredDeviations(float[] a, int off, int n, float k, float m) {
        FloatVector kv = FloatVector.broadcast(S, k);
        FloatVector mv = FloatVector.broadcast(S, m);
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        int bound4 = n - (n % (4 * L));
        for (; i < bound4; i += 4 * L) {
            FloatVector d0 = FloatVector.fromArray(S, a, off + i).sub(kv).sub(mv);
            FloatVector d1 = FloatVector.fromArray(S, a, off + i + L).sub(kv).sub(mv);
            FloatVector d2 = FloatVector.fromArray(S, a, off + i + 2 * L).sub(kv).sub(mv);
            FloatVector d3 = FloatVector.fromArray(S, a, off + i + 3 * L).sub(kv).sub(mv);
            a0 = d0.fma(d0, a0);
            a1 = d1.fma(d1, a1);
            a2 = d2.fma(d2, a2);
            a3 = d3.fma(d3, a3);
        }
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, a, off + i).sub(kv).sub(mv);
            a0 = d.fma(d, a0);
        }
        a0.add(a1).add(a2.add(a3)).intoArray(lanes, 0);
        float s = sumLanes(lanes);
        for (; i < n; i++) {
            float d = (a[off + i] - k) - m;
            s = Math.fma(d, d, s);
        }
        return s;
    }

    @Override
    float sumSquares(float[] a, int off, int n) {
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        int bound4 = n - (n % (4 * L));
        for (; i < bound4; i += 4 * L) {
            FloatVector v0 = FloatVector.fromArray(S, a, off + i);
            FloatVector v1 = FloatVector.fromArray(S, a, off + i + L);
            FloatVector v2 = FloatVector.fromArray(S, a, off + i + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, a, off + i + 3 * L);
            a0 = v0.fma(v0, a0);
            a1 = v1.fma(v1, a1);
            a2 = v2.fma(v2, a2);
            a3 = v3.fma(v3, a3);
        }
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector v = FloatVector.fromArray(S, a, off + i);
            a0 = v.fma(v, a0);
        }
        a0.add(a1).add(a2.add(a3)).intoArray(lanes, 0);
        float s = sumLanes(lanes);
        for (; i < n; i++) {
            s = Math.fma(a[off + i], a[off + i], s);
        }
        return s;
    }

    @Override
    float sumAndSquaresShifted(float[] a, int off, int n, float k) {
        FloatVector kv = FloatVector.broadcast(S, k);
        FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
        FloatVector q0 = s0, q1 = s0, q2 = s0, q3 = s0;
        int i = 0;
        int bound4 = n - (n % (4 * L));
        for (; i < bound4; i += 4 * L) {
            FloatVector d0 = FloatVector.fromArray(S, a, off + i).sub(kv);
            FloatVector d1 = FloatVector.fromArray(S, a, off + i + L).sub(kv);
            FloatVector d2 = FloatVector.fromArray(S, a, off + i + 2 * L).sub(kv);
            FloatVector d3 = FloatVector.fromArray(S, a, off + i + 3 * L).sub(kv);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            s2 = s2.add(d2);
            s3 = s3.add(d3);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
            q2 = d2.fma(d2, q2);
            q3 = d3.fma(d3, q3);
        }
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, a, off + i).sub(kv);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
        }
        s0.add(s1).add(s2.add(s3)).intoArray(lanes, 0);
        float sum = sumLanes(lanes);
        q0.add(q1).add(q2.add(q3)).intoArray(lanes, 0);
        float sq = sumLanes(lanes);
        for (; i < n; i++) {
            float d = a[off + i] - k;
            sum += d;
            sq = Math.fma(d, d, sq);
        }
        squares = sq;
        return sum;
    }

    // ------------------------------------------------------------------ elementwise

    @Override
    void normalizeAffine(float[] x, float[] y, int off, int n, float k, float m, float inv, float[] w, float[] b,
            int aoff) {
        FloatVector kv = FloatVector.broadcast(S, k);
        FloatVector mv = FloatVector.broadcast(S, m);
        FloatVector iv = FloatVector.broadcast(S, inv);
        int i = 0;
        int bound = n - (n % L);
        if (b == null) {
            // fma(v, w, -0.0f) is v * w exactly: skip the loads of an identity bias.
            if (noShift(k, m)) {
                for (; i < bound; i += L) {
                    FloatVector.fromArray(S, x, off + i).mul(iv).mul(FloatVector.fromArray(S, w, aoff + i))
                            .intoArray(y, off + i);
                }
            } else {
                for (; i < bound; i += L) {
                    FloatVector.fromArray(S, x, off + i).sub(kv).sub(mv).mul(iv)
                            .mul(FloatVector.fromArray(S, w, aoff + i)).intoArray(y, off + i);
                }
            }
            for (; i < n; i++) {
                y[off + i] = (((x[off + i] - k) - m) * inv) * w[aoff + i];
            }
            return;
        }
        if (noShift(k, m)) {
            for (; i < bound; i += L) {
                FloatVector.fromArray(S, x, off + i).mul(iv)
                        .fma(FloatVector.fromArray(S, w, aoff + i), FloatVector.fromArray(S, b, aoff + i))
                        .intoArray(y, off + i);
            }
        } else {
            for (; i < bound; i += L) {
                FloatVector.fromArray(S, x, off + i).sub(kv).sub(mv).mul(iv)
                        .fma(FloatVector.fromArray(S, w, aoff + i), FloatVector.fromArray(S, b, aoff + i))
                        .intoArray(y, off + i);
            }
        }
        for (; i < n; i++) {
            y[off + i] = Math.fma(((x[off + i] - k) - m) * inv, w[aoff + i], b[aoff + i]);
        }
    }

    @Override
    void normalizeUniform(float[] x, float[] y, int off, int n, float k, float m, float inv, float w, float b) {
        FloatVector kv = FloatVector.broadcast(S, k);
        FloatVector mv = FloatVector.broadcast(S, m);
        FloatVector iv = FloatVector.broadcast(S, inv);
        FloatVector wv = FloatVector.broadcast(S, w);
        FloatVector bv = FloatVector.broadcast(S, b);
        int i = 0;
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector.fromArray(S, x, off + i).sub(kv).sub(mv).mul(iv).fma(wv, bv).intoArray(y, off + i);
        }
        for (; i < n; i++) {
            y[off + i] = Math.fma(((x[off + i] - k) - m) * inv, w, b);
        }
    }

    // ------------------------------------------------------------------ fused

    @Override
    float normalizeAffineSumSquaresNext(float[] x, float[] y, int off, int n, float k, float m, float inv,
            float[] w, float[] b, int aoff, int next) {
        if (!noShift(k, m) || b != null) {
            normalizeAffine(x, y, off, n, k, m, inv, w, b, aoff);
            return sumSquares(x, next, n);
        }
        FloatVector iv = FloatVector.broadcast(S, inv);
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        int bound4 = n - (n % (4 * L));
        for (; i < bound4; i += 4 * L) {
            FloatVector v0 = FloatVector.fromArray(S, x, next + i);
            FloatVector v1 = FloatVector.fromArray(S, x, next + i + L);
            FloatVector v2 = FloatVector.fromArray(S, x, next + i + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, x, next + i + 3 * L);
            a0 = v0.fma(v0, a0);
            a1 = v1.fma(v1, a1);
            a2 = v2.fma(v2, a2);
            a3 = v3.fma(v3, a3);
            for (int u = 0; u < 4 * L; u += L) {
                FloatVector.fromArray(S, x, off + i + u).mul(iv).mul(FloatVector.fromArray(S, w, aoff + i + u))
                        .intoArray(y, off + i + u);
            }
        }
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector v = FloatVector.fromArray(S, x, next + i);
            a0 = v.fma(v, a0);
            FloatVector.fromArray(S, x, off + i).mul(iv).mul(FloatVector.fromArray(S, w, aoff + i))
                    .intoArray(y, off + i);
        }
        a0.add(a1).add(a2.add(a3)).intoArray(lanes, 0);
        float s = sumLanes(lanes);
        for (int j = i; j < n; j++) {
            s = Math.fma(x[next + j], x[next + j], s);
        }
        for (; i < n; i++) {
            y[off + i] = (x[off + i] * inv) * w[aoff + i];
        }
        return s;
    }

    @Override
    float normalizeAffineSumAndSquaresNext(float[] x, float[] y, int aOff, int n, float k, float m, float inv,
            float[] w, float[] b, int aoff, int sOff, float ks) {
        FloatVector kv = FloatVector.broadcast(S, k);
        FloatVector mv = FloatVector.broadcast(S, m);
        FloatVector iv = FloatVector.broadcast(S, inv);
        FloatVector ksv = FloatVector.broadcast(S, ks);
        FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
        FloatVector q0 = s0, q1 = s0, q2 = s0, q3 = s0;
        int i = 0;
        int bound4 = n - (n % (4 * L));
        for (; i < bound4; i += 4 * L) {
            FloatVector d0 = FloatVector.fromArray(S, x, sOff + i).sub(ksv);
            FloatVector d1 = FloatVector.fromArray(S, x, sOff + i + L).sub(ksv);
            FloatVector d2 = FloatVector.fromArray(S, x, sOff + i + 2 * L).sub(ksv);
            FloatVector d3 = FloatVector.fromArray(S, x, sOff + i + 3 * L).sub(ksv);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            s2 = s2.add(d2);
            s3 = s3.add(d3);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
            q2 = d2.fma(d2, q2);
            q3 = d3.fma(d3, q3);
            for (int u = 0; u < 4 * L; u += L) {
                FloatVector.fromArray(S, x, aOff + i + u).sub(kv).sub(mv).mul(iv)
                        .fma(FloatVector.fromArray(S, w, aoff + i + u), FloatVector.fromArray(S, b, aoff + i + u))
                        .intoArray(y, aOff + i + u);
            }
        }
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, x, sOff + i).sub(ksv);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
            FloatVector.fromArray(S, x, aOff + i).sub(kv).sub(mv).mul(iv)
                    .fma(FloatVector.fromArray(S, w, aoff + i), FloatVector.fromArray(S, b, aoff + i))
                    .intoArray(y, aOff + i);
        }
        s0.add(s1).add(s2.add(s3)).intoArray(lanes, 0);
        float sum = sumLanes(lanes);
        q0.add(q1).add(q2.add(q3)).intoArray(lanes, 0);
        float sq = sumLanes(lanes);
        for (int j = i; j < n; j++) {
            float d = x[sOff + j] - ks;
            sum += d;
            sq = Math.fma(d, d, sq);
        }
        for (; i < n; i++) {
            y[aOff + i] = Math.fma(((x[aOff + i] - k) - m) * inv, w[aoff + i], b[aoff + i]);
        }
        squares = sq;
        return sum;
    }

    // ------------------------------------------------------------------ rows of 2 to 64 values

    /*
     * Lane-crossing shuffles of smallRows, each in its own constant: a rearrange by a shuffle the JIT
     * cannot see as a constant checks the shuffle's indexes on every call (a vector compare and
     * test), which took half the time of rows of 4 values.
     */
    /** Lane i takes lane i ^ h (one level of the halving tree); the identity where h >= L. */
    static final VectorShuffle<Float> XOR1 = shuffle(i -> i ^ 1);
    static final VectorShuffle<Float> XOR2 = shuffle(i -> i ^ 2);
    static final VectorShuffle<Float> XOR4 = shuffle(i -> L > 4 ? i ^ 4 : i);
    static final VectorShuffle<Float> XOR8 = shuffle(i -> L > 8 ? i ^ 8 : i);
    /**
     * The lanes whose bit h is set: blended with the XOR-h shuffle, level by level, each lane takes
     * the first lane of its segment (the row's shift) with constant shuffles only.
     */
    private static final VectorMask<Float> BIT1 = mask(i -> (i & 1) != 0);
    private static final VectorMask<Float> BIT2 = mask(i -> (i & 2) != 0);
    private static final VectorMask<Float> BIT4 = mask(i -> (i & 4) != 0);
    private static final VectorMask<Float> BIT8 = mask(i -> (i & 8) != 0);
    /*
     * For laneRows2 and laneStats4: even(a, b) holds the even lanes of a, then those of b, odd(a, b)
     * the odd ones (each a constant shuffle of a and of b, blended); SPREAD2_k and SPREAD4_k give
     * lane i lane k * L / c + i / c, the statistic of the row lane i holds in vector k of c values a row.
     */
    private static final VectorShuffle<Float> EVEN = shuffle(i -> (2 * i) % L);
    private static final VectorShuffle<Float> ODD = shuffle(i -> (2 * i + 1) % L);
    private static final VectorMask<Float> UPPER = mask(i -> i >= L / 2);
    private static final VectorShuffle<Float> SPREAD2_0 = shuffle(i -> i / 2);
    private static final VectorShuffle<Float> SPREAD2_1 = shuffle(i -> L / 2 + i / 2);
    private static final VectorShuffle<Float> SPREAD4_0 = shuffle(i -> i / 4);
    private static final VectorShuffle<Float> SPREAD4_1 = shuffle(i -> L / 4 + i / 4);
    private static final VectorShuffle<Float> SPREAD4_2 = shuffle(i -> 2 * L / 4 + i / 4);
    private static final VectorShuffle<Float> SPREAD4_3 = shuffle(i -> 3 * L / 4 + i / 4);

    private static FloatVector even(FloatVector a, FloatVector b) {
        return a.rearrange(EVEN).blend(b.rearrange(EVEN), UPPER);
    }

    private static FloatVector odd(FloatVector a, FloatVector b) {
        return a.rearrange(ODD).blend(b.rearrange(ODD), UPPER);
    }

    /** {@code FROM[k]}: the lanes from k on (a blend mask need not be a constant). */
    @SuppressWarnings("unchecked")
    static final VectorMask<Float>[] FROM = new VectorMask[L];

    static {
        for (int k = 0; k < L; k++) {
            int from = k;
            FROM[k] = mask(i -> i >= from);
        }
    }

    private static VectorMask<Float> mask(java.util.function.IntPredicate lane) {
        boolean[] bits = new boolean[L];
        for (int i = 0; i < L; i++) {
            bits[i] = lane.test(i);
        }
        return VectorMask.fromArray(S, bits, 0);
    }

    private static VectorShuffle<Float> shuffle(java.util.function.IntUnaryOperator lane) {
        int[] lanes = new int[L];
        for (int i = 0; i < L; i++) {
            lanes[i] = lane.applyAsInt(i);
        }
        return VectorShuffle.fromArray(S, lanes, 0);
    }

    /** Scratch of {@link #smallRows}: the means and inverse scales of a vector of rows, and tree levels. */
    private float[] smallMeans;
    private float[] smallInvs;
    private float[] smallLevels;

    /**
     * A vector of L / c rows at a time (c <= L; rows of 2 and 4 values, and of 8 with mean and
     * variance where L is 8, L rows at a time with their statistics in lanes: {@link #segmentRows}),
     * or a row of two, four or eight vectors; rows whose statistics are not all finite, and rows
     * after the last whole vector, go through {@link RowKernels#smallRow}, which stops at the first
     * that is not.
     */
    @Override
    int smallRows(SmallRows s, int from, int to) {
        if (smallMeans == null) {
            smallMeans = new float[L];
            smallInvs = new float[L];
            smallLevels = new float[L];
        }
        if (s.c > 8 * L) {
            return super.smallRows(s, from, to); // more vectors a row than registerRows holds (128-bit vectors)
        }
        int unit = s.c <= L ? L / s.c : 1; // rows a vector step takes
        int r = from;
        while (r + unit <= to) {
            int end = to - (to - r) % unit;
            int stop = s.c <= L ? segmentRows(s, r, end) : registerRows(s, r, end);
            if (stop == end) {
                r = end;
                break;
            }
            // A vector of rows with a statistic that is not finite: row by row.
            int done = super.smallRows(s, stop, stop + unit);
            if (done < stop + unit) {
                return done;
            }
            r = stop + unit;
        }
        return super.smallRows(s, r, to);
    }

    /**
     * Rows {@code [from, to)} of c <= L values, L / c rows a vector (each segment of c lanes a row),
     * after the whole blocks of L rows that {@link #laneRows2} and {@link #laneRowsInPasses} take;
     * {@code to - from} is a multiple of L / c.
     *
     * @return {@code to}, or the first row of a vector (or block) whose statistics are not all
     *     finite (nothing of it written)
     */
    private int segmentRows(SmallRows s, int from, int to) {
        int c = s.c;
        if (c < L && c <= 4 || c == 8 && L == 8 && !s.rms) {
            int blocks = to - (to - from) % L;
            // Rows of 2, 4 and 8 values: L rows at a time with the statistics in lanes. RMS norm's rows of
            // 8 stay in segments: without a shift and a mean, their trees cost less than the transposition
            // (1048576x8: 2.6-2.8 ms against 3.1-3.2).
            int stop = c == 2 ? laneRows2(s, from, blocks) : laneRowsInPasses(s, from, blocks);
            if (stop < blocks) {
                return stop;
            }
            from = blocks;
        }
        int unit = L / c;
        int a = s.affine(from);
        FloatVector invC = FloatVector.broadcast(S, s.invC);
        FloatVector one = FloatVector.broadcast(S, 1f);
        FloatVector eps = FloatVector.broadcast(S, s.eps);
        float[] means = smallMeans;
        float[] invs = smallInvs;
        for (int r = from; r < to; r += unit) {
            int off = r * c;
            FloatVector v = FloatVector.fromArray(S, s.x, off);
            FloatVector e = v;
            FloatVector mu = FloatVector.zero(S);
            if (!s.rms) {
                FloatVector k = v.blend(v.rearrange(XOR1), BIT1);
                if (c >= 4) {
                    k = k.blend(k.rearrange(XOR2), BIT2);
                }
                if (c >= 8) {
                    k = k.blend(k.rearrange(XOR4), BIT4);
                }
                if (c >= 16) {
                    k = k.blend(k.rearrange(XOR8), BIT8);
                }
                FloatVector d = v.sub(k);
                FloatVector t = d;
                // The halving tree within each segment: h = c/2, ..., 1.
                if (c >= 16) {
                    t = t.add(t.rearrange(XOR8));
                }
                if (c >= 8) {
                    t = t.add(t.rearrange(XOR4));
                }
                if (c >= 4) {
                    t = t.add(t.rearrange(XOR2));
                }
                t = t.add(t.rearrange(XOR1));
                FloatVector m = t.mul(invC);
                e = d.sub(m);
                mu = k.add(m);
            }
            // The same levels again, written out rather than in a helper: a vector passed to a call the
            // JIT does not inline is boxed.
            FloatVector q = e.mul(e);
            if (c >= 16) {
                q = q.add(q.rearrange(XOR8));
            }
            if (c >= 8) {
                q = q.add(q.rearrange(XOR4));
            }
            if (c >= 4) {
                q = q.add(q.rearrange(XOR2));
            }
            q = q.add(q.rearrange(XOR1));
            // SmallRows.invStd, written out likewise.
            FloatVector var = q.mul(invC);
            FloatVector inv = s.epsOutside ? one.div(var.sqrt().add(eps)) : one.div(var.add(eps).sqrt());
            // Not finite: a value that is not, or float32 overflow (q alone misses a mean's overflow).
            // both - both is 0 exactly where both is finite, NaN elsewhere: one compare for the whole vector
            // (a segment's lanes hold the same statistics). Storing the sums and testing a lane per
            // row cost 16% of 65536x128 in 32 groups.
            FloatVector both = mu.add(q);
            if (!both.sub(both).compare(VectorOperators.EQ, 0f).allTrue()) {
                return r;
            }
            e.mul(inv).fma(FloatVector.fromArray(S, s.w, a), FloatVector.fromArray(S, s.b, a)).intoArray(s.y, off);
            if (s.mean != null) {
                mu.intoArray(means, 0);
                for (int i = 0, row = r; i < L; i += c, row++) {
                    s.mean[row] = means[i];
                }
            }
            if (s.inv != null) {
                inv.intoArray(invs, 0);
                for (int i = 0, row = r; i < L; i += c, row++) {
                    s.inv[row] = invs[i];
                }
            }
            a += L;
            if (a >= s.period) {
                a -= s.period;
            }
        }
        return to;
    }

    /**
     * Rows {@code [from, to)} of 2 values, L rows at a time: the statistics with value j of row i in
     * lane i of vector j ({@link #even} and {@link #odd} of the rows' two vectors), so they take
     * vertical operations only, one square root and one division for L rows, and are stored as
     * whole vectors; then each row's shift, mean and inverse scale spread back over its values
     * ({@code SPREAD2_k}) for Y. {@link #segmentRows}'s operations lane by lane, so the same bits.
     * {@code to - from} is a multiple of L.
     *
     * @return {@code to}, or the first row of a block whose statistics are not all finite (nothing
     *     of it written)
     */
    private int laneRows2(SmallRows s, int from, int to) {
        float[] x = s.x;
        float[] y = s.y;
        int a = s.affine(from);
        FloatVector invC = FloatVector.broadcast(S, s.invC);
        FloatVector one = FloatVector.broadcast(S, 1f);
        FloatVector eps = FloatVector.broadcast(S, s.eps);
        for (int r = from; r < to; r += L) {
            int off = r * 2;
            FloatVector v0 = FloatVector.fromArray(S, x, off);
            FloatVector v1 = FloatVector.fromArray(S, x, off + L);
            FloatVector t0 = even(v0, v1);
            FloatVector t1 = odd(v0, v1);
            FloatVector e0 = t0;
            FloatVector e1 = t1;
            FloatVector m = FloatVector.zero(S);
            if (!s.rms) {
                FloatVector d0 = t0.sub(t0);
                FloatVector d1 = t1.sub(t0);
                m = d0.add(d1).mul(invC);
                e0 = d0.sub(m);
                e1 = d1.sub(m);
            }
            FloatVector q = e0.mul(e0).add(e1.mul(e1));
            FloatVector var = q.mul(invC);
            FloatVector inv = s.epsOutside ? one.div(var.sqrt().add(eps)) : one.div(var.add(eps).sqrt());
            FloatVector mu = t0.add(m);
            FloatVector both = (s.rms ? m : mu).add(q);
            if (!both.sub(both).compare(VectorOperators.EQ, 0f).allTrue()) {
                return r;
            }
            FloatVector u0 = s.rms ? v0 : v0.sub(t0.rearrange(SPREAD2_0)).sub(m.rearrange(SPREAD2_0));
            FloatVector u1 = s.rms ? v1 : v1.sub(t0.rearrange(SPREAD2_1)).sub(m.rearrange(SPREAD2_1));
            u0.mul(inv.rearrange(SPREAD2_0)).fma(FloatVector.fromArray(S, s.w, a), FloatVector.fromArray(S, s.b, a))
                    .intoArray(y, off);
            u1.mul(inv.rearrange(SPREAD2_1)).fma(FloatVector.fromArray(S, s.w, a + L),
                    FloatVector.fromArray(S, s.b, a + L)).intoArray(y, off + L);
            if (s.mean != null) {
                mu.intoArray(s.mean, r);
            }
            if (s.inv != null) {
                inv.intoArray(s.inv, r);
            }
            a += 2 * L;
            while (a >= s.period) {
                a -= s.period; // more than once where the period is shorter than L rows
            }
        }
        return to;
    }

    /** Rows per pass of {@link #laneRowsInPasses}: its statistics' scratch, in L1. */
    private static final int LANE_CHUNK = 64;
    /** Scratch of {@link #laneRowsInPasses}: each row's shift, mean of the shifted values and inverse scale. */
    private float[] laneShift;
    private float[] laneMean;
    private float[] laneInv;
    /** Scratch of {@link #laneStats8}: L rows of 8 values by value index. */
    private float[] laneValues;

    /**
     * {@link #laneRows2} for rows of 4 values, and of 8 where L is 8, {@link #LANE_CHUNK} rows a pass:
     * {@link #laneStats4} or {@link #laneStats8} takes the statistics into scratch, {@link #laneApply4}
     * or {@link #laneApply8} writes Y from them (X again, from L1). Two methods because one held more
     * vector operations than C2 inlines into one compilation (NodeCountInliningCutoff: the rest of its
     * Vector API calls stayed calls, on boxed vectors: 6-9 ms against 3.6 ms for 65536x128 in 32 groups).
     */
    private int laneRowsInPasses(SmallRows s, int from, int to) {
        if (laneShift == null) {
            laneShift = new float[LANE_CHUNK];
            laneMean = new float[LANE_CHUNK];
            laneInv = new float[LANE_CHUNK];
            laneValues = new float[8 * L];
        }
        for (int r = from; r < to; r += LANE_CHUNK) {
            int end = Math.min(to, r + LANE_CHUNK);
            int stop;
            if (s.c == 4) {
                stop = laneStats4(s, r, end);
                laneApply4(s, r, stop);
            } else {
                stop = laneStats8(s, r, end);
                laneApply8(s, r, stop);
            }
            if (stop < end) {
                return stop;
            }
        }
        return to;
    }

    /**
     * The statistics of rows {@code [from, to)} of 4 values ({@code to - from} a multiple of L, at
     * most {@link #LANE_CHUNK}): two levels of {@link #even} and {@link #odd} take each L rows' four
     * vectors to one vector per value index; the halving tree is {@code (v0 + v2) + (v1 + v3)}, as
     * {@link #segmentRows}'s. L is at least 8.
     *
     * @return {@code to}, or the first row of a block whose statistics are not all finite (nothing
     *     of it written)
     */
    private int laneStats4(SmallRows s, int from, int to) {
        float[] x = s.x;
        FloatVector invC = FloatVector.broadcast(S, s.invC);
        FloatVector one = FloatVector.broadcast(S, 1f);
        FloatVector eps = FloatVector.broadcast(S, s.eps);
        for (int r = from; r < to; r += L) {
            int off = r * 4;
            FloatVector v0 = FloatVector.fromArray(S, x, off);
            FloatVector v1 = FloatVector.fromArray(S, x, off + L);
            FloatVector v2 = FloatVector.fromArray(S, x, off + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, x, off + 3 * L);
            // Values 0 and 2, and 1 and 3, alternating, of the first and of the second half of the rows.
            FloatVector ea = even(v0, v1);
            FloatVector eb = even(v2, v3);
            FloatVector oa = odd(v0, v1);
            FloatVector ob = odd(v2, v3);
            FloatVector t0 = even(ea, eb);
            FloatVector t1 = even(oa, ob);
            FloatVector t2 = odd(ea, eb);
            FloatVector t3 = odd(oa, ob);
            FloatVector e0 = t0;
            FloatVector e1 = t1;
            FloatVector e2 = t2;
            FloatVector e3 = t3;
            FloatVector m = FloatVector.zero(S);
            if (!s.rms) {
                FloatVector d0 = t0.sub(t0);
                FloatVector d1 = t1.sub(t0);
                FloatVector d2 = t2.sub(t0);
                FloatVector d3 = t3.sub(t0);
                m = d0.add(d2).add(d1.add(d3)).mul(invC);
                e0 = d0.sub(m);
                e1 = d1.sub(m);
                e2 = d2.sub(m);
                e3 = d3.sub(m);
            }
            FloatVector q = e0.mul(e0).add(e2.mul(e2)).add(e1.mul(e1).add(e3.mul(e3)));
            FloatVector var = q.mul(invC);
            FloatVector inv = s.epsOutside ? one.div(var.sqrt().add(eps)) : one.div(var.add(eps).sqrt());
            FloatVector mu = t0.add(m);
            FloatVector both = (s.rms ? m : mu).add(q);
            if (!both.sub(both).compare(VectorOperators.EQ, 0f).allTrue()) {
                return r;
            }
            t0.intoArray(laneShift, r - from);
            m.intoArray(laneMean, r - from);
            inv.intoArray(laneInv, r - from);
            if (s.mean != null) {
                mu.intoArray(s.mean, r);
            }
            if (s.inv != null) {
                inv.intoArray(s.inv, r);
            }
        }
        return to;
    }

    /**
     * The 8 rows of 8 values at {@code off} into {@code t}, value j of row i at {@code 8 j + i}, in
     * scalar moves: three levels of {@link #even} and {@link #odd} (24 of them) passed C2's node
     * budget even in a method of their own, and gathers were slower (32768x256 in 32
     * groups: 3.7 ms with gathers, 2.8-3.0 ms with these moves, 4.1-4.2 ms through segmentRows).
     */
    private static void transpose8(float[] x, int off, float[] t) {
        for (int i = 0; i < 8; i++) {
            int o = off + 8 * i;
            t[i] = x[o];
            t[8 + i] = x[o + 1];
            t[16 + i] = x[o + 2];
            t[24 + i] = x[o + 3];
            t[32 + i] = x[o + 4];
            t[40 + i] = x[o + 5];
            t[48 + i] = x[o + 6];
            t[56 + i] = x[o + 7];
        }
    }

    /**
     * {@link #laneStats4} for rows of 8 values where L is 8 ({@link #transpose8}); the halving tree is
     * {@code ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))}, as {@link #segmentRows}'s. The
     * steps from the variance on repeat {@link #laneStats4}'s (and {@link #laneRows2}'s) rather than
     * call a helper: a vector passed to a call C2 does not inline is boxed, and these methods are
     * near its inlining budget.
     */
    private int laneStats8(SmallRows s, int from, int to) {
        float[] x = s.x;
        FloatVector invC = FloatVector.broadcast(S, s.invC);
        FloatVector one = FloatVector.broadcast(S, 1f);
        FloatVector eps = FloatVector.broadcast(S, s.eps);
        for (int r = from; r < to; r += L) {
            int off = r * 8;
            float[] tr = laneValues;
            transpose8(x, off, tr);
            FloatVector t0 = FloatVector.fromArray(S, tr, 0);
            FloatVector t1 = FloatVector.fromArray(S, tr, L);
            FloatVector t2 = FloatVector.fromArray(S, tr, 2 * L);
            FloatVector t3 = FloatVector.fromArray(S, tr, 3 * L);
            FloatVector t4 = FloatVector.fromArray(S, tr, 4 * L);
            FloatVector t5 = FloatVector.fromArray(S, tr, 5 * L);
            FloatVector t6 = FloatVector.fromArray(S, tr, 6 * L);
            FloatVector t7 = FloatVector.fromArray(S, tr, 7 * L);
            FloatVector e0 = t0;
            FloatVector e1 = t1;
            FloatVector e2 = t2;
            FloatVector e3 = t3;
            FloatVector e4 = t4;
            FloatVector e5 = t5;
            FloatVector e6 = t6;
            FloatVector e7 = t7;
            FloatVector m = FloatVector.zero(S);
            if (!s.rms) {
                FloatVector d0 = t0.sub(t0);
                FloatVector d1 = t1.sub(t0);
                FloatVector d2 = t2.sub(t0);
                FloatVector d3 = t3.sub(t0);
                FloatVector d4 = t4.sub(t0);
                FloatVector d5 = t5.sub(t0);
                FloatVector d6 = t6.sub(t0);
                FloatVector d7 = t7.sub(t0);
                m = d0.add(d4).add(d2.add(d6)).add(d1.add(d5).add(d3.add(d7))).mul(invC);
                e0 = d0.sub(m);
                e1 = d1.sub(m);
                e2 = d2.sub(m);
                e3 = d3.sub(m);
                e4 = d4.sub(m);
                e5 = d5.sub(m);
                e6 = d6.sub(m);
                e7 = d7.sub(m);
            }
            FloatVector q = e0.mul(e0).add(e4.mul(e4)).add(e2.mul(e2).add(e6.mul(e6)))
                    .add(e1.mul(e1).add(e5.mul(e5)).add(e3.mul(e3).add(e7.mul(e7))));
            FloatVector var = q.mul(invC);
            FloatVector inv = s.epsOutside ? one.div(var.sqrt().add(eps)) : one.div(var.add(eps).sqrt());
            FloatVector mu = t0.add(m);
            FloatVector both = (s.rms ? m : mu).add(q);
            if (!both.sub(both).compare(VectorOperators.EQ, 0f).allTrue()) {
                return r;
            }
            t0.intoArray(laneShift, r - from);
            m.intoArray(laneMean, r - from);
            inv.intoArray(laneInv, r - from);
            if (s.mean != null) {
                mu.intoArray(s.mean, r);
            }
            if (s.inv != null) {
                inv.intoArray(s.inv, r);
            }
        }
        return to;
    }

    /** {@link #laneApply4} for rows of 8 values where L is 8: a row a vector, its statistics broadcast. */
    private void laneApply8(SmallRows s, int from, int to) {
        float[] x = s.x;
        float[] y = s.y;
        float[] w = s.w;
        float[] b = s.b;
        int a = s.affine(from);
        for (int r = from; r < to; r++) {
            int off = r * 8;
            int j = r - from;
            FloatVector v = FloatVector.fromArray(S, x, off);
            if (!s.rms) {
                v = v.sub(FloatVector.broadcast(S, laneShift[j])).sub(FloatVector.broadcast(S, laneMean[j]));
            }
            v.mul(FloatVector.broadcast(S, laneInv[j]))
                    .fma(FloatVector.fromArray(S, w, a), FloatVector.fromArray(S, b, a)).intoArray(y, off);
            a += 8;
            if (a >= s.period) {
                a -= s.period;
            }
        }
    }

    /**
     * Y of rows {@code [from, to)} of 4 values from {@link #laneStats4}'s scratch, each row's
     * statistics spread over its values.
     */
    private void laneApply4(SmallRows s, int from, int to) {
        float[] x = s.x;
        float[] y = s.y;
        float[] w = s.w;
        float[] b = s.b;
        int a = s.affine(from);
        for (int r = from; r < to; r += L) {
            int off = r * 4;
            FloatVector k = FloatVector.fromArray(S, laneShift, r - from);
            FloatVector m = FloatVector.fromArray(S, laneMean, r - from);
            FloatVector inv = FloatVector.fromArray(S, laneInv, r - from);
            FloatVector v0 = FloatVector.fromArray(S, x, off);
            FloatVector v1 = FloatVector.fromArray(S, x, off + L);
            FloatVector v2 = FloatVector.fromArray(S, x, off + 2 * L);
            FloatVector v3 = FloatVector.fromArray(S, x, off + 3 * L);
            if (!s.rms) {
                v0 = v0.sub(k.rearrange(SPREAD4_0)).sub(m.rearrange(SPREAD4_0));
                v1 = v1.sub(k.rearrange(SPREAD4_1)).sub(m.rearrange(SPREAD4_1));
                v2 = v2.sub(k.rearrange(SPREAD4_2)).sub(m.rearrange(SPREAD4_2));
                v3 = v3.sub(k.rearrange(SPREAD4_3)).sub(m.rearrange(SPREAD4_3));
            }
            v0.mul(inv.rearrange(SPREAD4_0)).fma(FloatVector.fromArray(S, w, a), FloatVector.fromArray(S, b, a))
                    .intoArray(y, off);
            v1.mul(inv.rearrange(SPREAD4_1)).fma(FloatVector.fromArray(S, w, a + L),
                    FloatVector.fromArray(S, b, a + L)).intoArray(y, off + L);
            v2.mul(inv.rearrange(SPREAD4_2)).fma(FloatVector.fromArray(S, w, a + 2 * L),
                    FloatVector.fromArray(S, b, a + 2 * L)).intoArray(y, off + 2 * L);
            v3.mul(inv.rearrange(SPREAD4_3)).fma(FloatVector.fromArray(S, w, a + 3 * L),
                    FloatVector.fromArray(S, b, a + 3 * L)).intoArray(y, off + 3 * L);
            a += 4 * L;
            while (a >= s.period) {
                a -= s.period; // more than once where the period is shorter than L rows
            }
        }
    }

    /**
     * Rows {@code [from, to)} of c = 2L, 4L or 8L values, a row's vectors held in registers from one
     * load each: the halving tree's vector levels written out, then {@link #sumLanes} (the same order
     * over the lanes), so the bits are the plain twin's. Rows of 32 values: 3.1 ms for 8M values on
     * one thread, where the pipeline took 8.5-10.6; a version that took the tree's levels through
     * scratch memory and read X twice was no faster than the pipeline.
     *
     * @return {@code to}, or the first row whose statistics are not finite (nothing of it written)
     */
    private int registerRows(SmallRows s, int from, int to) {
        // One method per vector count, each straight-line code: a single method for the three with
        // the vector count tested per block grew past what C2 inlines in one compilation, and in a JVM
        // that had run other shapes and operators first its Vector API calls stayed calls (boxed
        // vectors: group norm of 8192x1024 in 32 groups took 4.8-57 ms a call there, 2.0-2.1 in a
        // JVM of its own; docs/performance.md, 2026-11-28 12:10 UTC).
        switch (s.c / L) {
            case 2:
                return registerRows2(s, from, to);
            case 4:
                return registerRows4(s, from, to);
            default:
                return registerRows8(s, from, to);
        }
    }

    /** Stores row r's saved statistics; returns the affine offset of the next row (a wraps at the period). */
    private static int rowDone(SmallRows s, int r, float mu, float inv, int a) {
        if (s.mean != null) {
            s.mean[r] = mu;
        }
        if (s.inv != null) {
            s.inv[r] = inv;
        }
        int next = a + s.c;
        return next >= s.period ? next - s.period : next;
    }

    /** {@link #registerRows} for rows of 2 vectors. */
    private int registerRows2(SmallRows s, int from, int to) {
        int c = s.c;
        float[] x = s.x;
        float[] w = s.w;
        float[] b = s.b;
        float[] y = s.y;
        float[] t = smallLevels;
        int a = s.affine(from);
        for (int r = from; r < to; r++) {
            int off = r * c;
            float k = s.rms ? 0f : x[off];
            FloatVector kv = FloatVector.broadcast(S, k);
            FloatVector d0 = FloatVector.fromArray(S, x, off).sub(kv);
            FloatVector d1 = FloatVector.fromArray(S, x, off + L).sub(kv);
            float m = 0f;
            if (!s.rms) {
                d0.add(d1).intoArray(t, 0);
                m = sumLanes(t) * s.invC;
            }
            FloatVector mv = FloatVector.broadcast(S, m);
            FloatVector e0 = d0.sub(mv);
            FloatVector e1 = d1.sub(mv);
            e0.mul(e0).add(e1.mul(e1)).intoArray(t, 0);
            float q = sumLanes(t);
            float mu = k + m;
            if (!Float.isFinite(q) || !Float.isFinite(mu)) {
                return r;
            }
            float inv = s.invStd(q * s.invC);
            FloatVector iv = FloatVector.broadcast(S, inv);
            e0.mul(iv).fma(FloatVector.fromArray(S, w, a), FloatVector.fromArray(S, b, a))
                    .intoArray(y, off);
            e1.mul(iv).fma(FloatVector.fromArray(S, w, a + L), FloatVector.fromArray(S, b, a + L))
                    .intoArray(y, off + L);
            a = rowDone(s, r, mu, inv, a);
        }
        return to;
    }

    /** {@link #registerRows} for rows of 4 vectors. */
    private int registerRows4(SmallRows s, int from, int to) {
        int c = s.c;
        float[] x = s.x;
        float[] w = s.w;
        float[] b = s.b;
        float[] y = s.y;
        float[] t = smallLevels;
        int a = s.affine(from);
        for (int r = from; r < to; r++) {
            int off = r * c;
            float k = s.rms ? 0f : x[off];
            FloatVector kv = FloatVector.broadcast(S, k);
            FloatVector d0 = FloatVector.fromArray(S, x, off).sub(kv);
            FloatVector d1 = FloatVector.fromArray(S, x, off + L).sub(kv);
            FloatVector d2 = FloatVector.fromArray(S, x, off + 2 * L).sub(kv);
            FloatVector d3 = FloatVector.fromArray(S, x, off + 3 * L).sub(kv);
            float m = 0f;
            if (!s.rms) {
                d0.add(d2).add(d1.add(d3)).intoArray(t, 0);
                m = sumLanes(t) * s.invC;
            }
            FloatVector mv = FloatVector.broadcast(S, m);
            FloatVector e0 = d0.sub(mv);
            FloatVector e1 = d1.sub(mv);
            FloatVector e2 = d2.sub(mv);
            FloatVector e3 = d3.sub(mv);
            e0.mul(e0).add(e2.mul(e2)).add(e1.mul(e1).add(e3.mul(e3))).intoArray(t, 0);
            float q = sumLanes(t);
            float mu = k + m;
            if (!Float.isFinite(q) || !Float.isFinite(mu)) {
                return r;
            }
            float inv = s.invStd(q * s.invC);
            FloatVector iv = FloatVector.broadcast(S, inv);
            e0.mul(iv).fma(FloatVector.fromArray(S, w, a), FloatVector.fromArray(S, b, a))
                    .intoArray(y, off);
            e1.mul(iv).fma(FloatVector.fromArray(S, w, a + L), FloatVector.fromArray(S, b, a + L))
                    .intoArray(y, off + L);
            e2.mul(iv).fma(FloatVector.fromArray(S, w, a + 2 * L), FloatVector.fromArray(S, b, a + 2 * L))
                    .intoArray(y, off + 2 * L);
            e3.mul(iv).fma(FloatVector.fromArray(S, w, a + 3 * L), FloatVector.fromArray(S, b, a + 3 * L))
                    .intoArray(y, off + 3 * L);
            a = rowDone(s, r, mu, inv, a);
        }
        return to;
    }

    /** {@link #registerRows} for rows of 8 vectors. */
    private int registerRows8(SmallRows s, int from, int to) {
        int c = s.c;
        float[] x = s.x;
        float[] w = s.w;
        float[] b = s.b;
        float[] y = s.y;
        float[] t = smallLevels;
        int a = s.affine(from);
        for (int r = from; r < to; r++) {
            int off = r * c;
            float k = s.rms ? 0f : x[off];
            FloatVector kv = FloatVector.broadcast(S, k);
            FloatVector d0 = FloatVector.fromArray(S, x, off).sub(kv);
            FloatVector d1 = FloatVector.fromArray(S, x, off + L).sub(kv);
            FloatVector d2 = FloatVector.fromArray(S, x, off + 2 * L).sub(kv);
            FloatVector d3 = FloatVector.fromArray(S, x, off + 3 * L).sub(kv);
            FloatVector d4 = FloatVector.fromArray(S, x, off + 4 * L).sub(kv);
            FloatVector d5 = FloatVector.fromArray(S, x, off + 5 * L).sub(kv);
            FloatVector d6 = FloatVector.fromArray(S, x, off + 6 * L).sub(kv);
            FloatVector d7 = FloatVector.fromArray(S, x, off + 7 * L).sub(kv);
            float m = 0f;
            if (!s.rms) {
                d0.add(d4).add(d2.add(d6)).add(d1.add(d5).add(d3.add(d7))).intoArray(t, 0);
                m = sumLanes(t) * s.invC;
            }
            FloatVector mv = FloatVector.broadcast(S, m);
            FloatVector e0 = d0.sub(mv);
            FloatVector e1 = d1.sub(mv);
            FloatVector e2 = d2.sub(mv);
            FloatVector e3 = d3.sub(mv);
            FloatVector e4 = d4.sub(mv);
            FloatVector e5 = d5.sub(mv);
            FloatVector e6 = d6.sub(mv);
            FloatVector e7 = d7.sub(mv);
            e0.mul(e0).add(e4.mul(e4)).add(e2.mul(e2).add(e6.mul(e6)))
                    .add(e1.mul(e1).add(e5.mul(e5)).add(e3.mul(e3).add(e7.mul(e7)))).intoArray(t, 0);
            float q = sumLanes(t);
            float mu = k + m;
            if (!Float.isFinite(q) || !Float.isFinite(mu)) {
                return r;
            }
            float inv = s.invStd(q * s.invC);
            FloatVector iv = FloatVector.broadcast(S, inv);
            e0.mul(iv).fma(FloatVector.fromArray(S, w, a), FloatVector.fromArray(S, b, a))
                    .intoArray(y, off);
            e1.mul(iv).fma(FloatVector.fromArray(S, w, a + L), FloatVector.fromArray(S, b, a + L))
                    .intoArray(y, off + L);
            e2.mul(iv).fma(FloatVector.fromArray(S, w, a + 2 * L), FloatVector.fromArray(S, b, a + 2 * L))
                    .intoArray(y, off + 2 * L);
            e3.mul(iv).fma(FloatVector.fromArray(S, w, a + 3 * L), FloatVector.fromArray(S, b, a + 3 * L))
                    .intoArray(y, off + 3 * L);
            e4.mul(iv).fma(FloatVector.fromArray(S, w, a + 4 * L), FloatVector.fromArray(S, b, a + 4 * L))
                    .intoArray(y, off + 4 * L);
            e5.mul(iv).fma(FloatVector.fromArray(S, w, a + 5 * L), FloatVector.fromArray(S, b, a + 5 * L))
                    .intoArray(y, off + 5 * L);
            e6.mul(iv).fma(FloatVector.fromArray(S, w, a + 6 * L), FloatVector.fromArray(S, b, a + 6 * L))
                    .intoArray(y, off + 6 * L);
            e7.mul(iv).fma(FloatVector.fromArray(S, w, a + 7 * L), FloatVector.fromArray(S, b, a + 7 * L))
                    .intoArray(y, off + 7 * L);
            a = rowDone(s, r, mu, inv, a);
        }
        return to;
    }

    @Override
    void singleValues(float[] x, float[] y, int off, int n, float inv, float[] w, float[] b, int a, float[] mean,
            float[] invOut) {
        // The scalar loop's operations a vector of rows at a time: 0f + x is x but for -0 (+0 then).
        FloatVector zero = FloatVector.zero(S);
        FloatVector iv = FloatVector.broadcast(S, inv);
        FloatVector one = FloatVector.broadcast(S, 1f);
        FloatVector negZero = FloatVector.broadcast(S, -0.0f);
        int i = 0;
        for (int bound = n - (n % L); i < bound; i += L) {
            FloatVector v = FloatVector.fromArray(S, x, off + i);
            FloatVector k = zero.add(v);
            FloatVector u = v.sub(k).sub(zero).mul(iv);
            (w == null ? u.fma(one, negZero)
                    : u.fma(FloatVector.fromArray(S, w, a + i), FloatVector.fromArray(S, b, a + i)))
                    .intoArray(y, off + i);
            if (mean != null) {
                k.intoArray(mean, off + i);
            }
            if (invOut != null) {
                iv.intoArray(invOut, off + i);
            }
        }
        super.singleValues(x, y, off + i, n - i, inv, w, b, a + i, mean, invOut);
    }

    @Override
    float normalizeUniformSumAndSquaresNext(float[] x, float[] y, int aOff, int n, float k, float m, float inv,
            float w, float b, int sOff, float ks) {
        // normalizeAffineSumAndSquaresNext with one scale and bias: no parameter streams to read. A
        // copy on purpose: one loop for both, choosing per iteration between the broadcast and the
        // loaded parameter vector, made C2 box the vectors (JFR allocation samples in the layer-norm
        // kernel, 168 in a short run), and boxed vectors cost page faults on fresh heap (sumLanes).
        FloatVector wv = FloatVector.broadcast(S, w);
        FloatVector bv = FloatVector.broadcast(S, b);
        FloatVector kv = FloatVector.broadcast(S, k);
        FloatVector mv = FloatVector.broadcast(S, m);
        FloatVector iv = FloatVector.broadcast(S, inv);
        FloatVector ksv = FloatVector.broadcast(S, ks);
        FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
        FloatVector q0 = s0, q1 = s0, q2 = s0, q3 = s0;
        int i = 0;
        int bound4 = n - (n % (4 * L));
        for (; i < bound4; i += 4 * L) {
            FloatVector d0 = FloatVector.fromArray(S, x, sOff + i).sub(ksv);
            FloatVector d1 = FloatVector.fromArray(S, x, sOff + i + L).sub(ksv);
            FloatVector d2 = FloatVector.fromArray(S, x, sOff + i + 2 * L).sub(ksv);
            FloatVector d3 = FloatVector.fromArray(S, x, sOff + i + 3 * L).sub(ksv);
            s0 = s0.add(d0);
            s1 = s1.add(d1);
            s2 = s2.add(d2);
            s3 = s3.add(d3);
            q0 = d0.fma(d0, q0);
            q1 = d1.fma(d1, q1);
            q2 = d2.fma(d2, q2);
            q3 = d3.fma(d3, q3);
            for (int u = 0; u < 4 * L; u += L) {
                FloatVector.fromArray(S, x, aOff + i + u).sub(kv).sub(mv).mul(iv)
                        .fma(wv, bv)
                        .intoArray(y, aOff + i + u);
            }
        }
        int bound = n - (n % L);
        for (; i < bound; i += L) {
            FloatVector d = FloatVector.fromArray(S, x, sOff + i).sub(ksv);
            s0 = s0.add(d);
            q0 = d.fma(d, q0);
            FloatVector.fromArray(S, x, aOff + i).sub(kv).sub(mv).mul(iv)
                    .fma(wv, bv)
                    .intoArray(y, aOff + i);
        }
        s0.add(s1).add(s2.add(s3)).intoArray(lanes, 0);
        float sum = sumLanes(lanes);
        q0.add(q1).add(q2.add(q3)).intoArray(lanes, 0);
        float sq = sumLanes(lanes);
        for (int j = i; j < n; j++) {
            float d = x[sOff + j] - ks;
            sum += d;
            sq = Math.fma(d, d, sq);
        }
        for (; i < n; i++) {
            y[aOff + i] = Math.fma(((x[aOff + i] - k) - m) * inv, w, b);
        }
        squares = sq;
        return sum;
    }

    // ------------------------------------------------------------------ column-wise

    @Override
    void columnSumAndSquares(float[] x, int off, int stride, int rows, int width, float[] k, int koff, float[] sum,
            float[] squares) {
        // Strips of 4 vectors of columns walk down the block with their 8 accumulators in registers:
        // one load per value, where sums kept in arrays would load and store them for every row.
        int j = 0;
        for (; j + 4 * L <= width; j += 4 * L) {
            FloatVector k0 = FloatVector.fromArray(S, k, koff + j);
            FloatVector k1 = FloatVector.fromArray(S, k, koff + j + L);
            FloatVector k2 = FloatVector.fromArray(S, k, koff + j + 2 * L);
            FloatVector k3 = FloatVector.fromArray(S, k, koff + j + 3 * L);
            FloatVector s0 = FloatVector.zero(S), s1 = s0, s2 = s0, s3 = s0;
            FloatVector q0 = s0, q1 = s0, q2 = s0, q3 = s0;
            for (int r = 0, o = off + j; r < rows; r++, o += stride) {
                FloatVector d0 = FloatVector.fromArray(S, x, o).sub(k0);
                FloatVector d1 = FloatVector.fromArray(S, x, o + L).sub(k1);
                FloatVector d2 = FloatVector.fromArray(S, x, o + 2 * L).sub(k2);
                FloatVector d3 = FloatVector.fromArray(S, x, o + 3 * L).sub(k3);
                s0 = s0.add(d0);
                s1 = s1.add(d1);
                s2 = s2.add(d2);
                s3 = s3.add(d3);
                q0 = d0.fma(d0, q0);
                q1 = d1.fma(d1, q1);
                q2 = d2.fma(d2, q2);
                q3 = d3.fma(d3, q3);
            }
            s0.intoArray(sum, j);
            s1.intoArray(sum, j + L);
            s2.intoArray(sum, j + 2 * L);
            s3.intoArray(sum, j + 3 * L);
            q0.intoArray(squares, j);
            q1.intoArray(squares, j + L);
            q2.intoArray(squares, j + 2 * L);
            q3.intoArray(squares, j + 3 * L);
        }
        for (; j + L <= width; j += L) {
            FloatVector kv = FloatVector.fromArray(S, k, koff + j);
            FloatVector sv = FloatVector.zero(S);
            FloatVector qv = sv;
            for (int r = 0, o = off + j; r < rows; r++, o += stride) {
                FloatVector d = FloatVector.fromArray(S, x, o).sub(kv);
                sv = sv.add(d);
                qv = d.fma(d, qv);
            }
            sv.intoArray(sum, j);
            qv.intoArray(squares, j);
        }
        for (; j < width; j++) {
            float kj = k[koff + j];
            float sj = 0f;
            float qj = 0f;
            for (int r = 0, o = off + j; r < rows; r++, o += stride) {
                float d = x[o] - kj;
                sj += d;
                qj = Math.fma(d, d, qj);
            }
            sum[j] = sj;
            squares[j] = qj;
        }
    }

    /**
     * {@link #columnSumAndSquares} eight rows at a time across the whole width, the sums kept in the
     * arrays (L1) between row groups: each lane still adds its column's rows in order, so the bits
     * are the strips'.
     */
    @Override
    void columnSumAndSquaresByRows(float[] x, int off, int stride, int rows, int width, float[] k,
            int koff, float[] sum, float[] squares) {
        Arrays.fill(sum, 0, width, 0f);
        Arrays.fill(squares, 0, width, 0f);
        int bound = width - (width % L);
        int r = 0;
        for (; r + 8 <= rows; r += 8) {
            int o0 = off + r * stride;
            int j = 0;
            for (; j < bound; j += L) {
                FloatVector kv = FloatVector.fromArray(S, k, koff + j);
                FloatVector d0 = FloatVector.fromArray(S, x, o0 + j).sub(kv);
                FloatVector d1 = FloatVector.fromArray(S, x, o0 + stride + j).sub(kv);
                FloatVector d2 = FloatVector.fromArray(S, x, o0 + 2 * stride + j).sub(kv);
                FloatVector d3 = FloatVector.fromArray(S, x, o0 + 3 * stride + j).sub(kv);
                FloatVector d4 = FloatVector.fromArray(S, x, o0 + 4 * stride + j).sub(kv);
                FloatVector d5 = FloatVector.fromArray(S, x, o0 + 5 * stride + j).sub(kv);
                FloatVector d6 = FloatVector.fromArray(S, x, o0 + 6 * stride + j).sub(kv);
                FloatVector d7 = FloatVector.fromArray(S, x, o0 + 7 * stride + j).sub(kv);
                FloatVector.fromArray(S, sum, j).add(d0).add(d1).add(d2).add(d3).add(d4).add(d5).add(d6).add(d7)
                        .intoArray(sum, j);
                FloatVector q = FloatVector.fromArray(S, squares, j);
                q = d0.fma(d0, q);
                q = d1.fma(d1, q);
                q = d2.fma(d2, q);
                q = d3.fma(d3, q);
                q = d4.fma(d4, q);
                q = d5.fma(d5, q);
                q = d6.fma(d6, q);
                d7.fma(d7, q).intoArray(squares, j);
            }
            for (; j < width; j++) {
                float kj = k[koff + j];
                float sj = sum[j];
                float qj = squares[j];
                for (int o = o0 + j, u = 0; u < 8; u++, o += stride) {
                    float d = x[o] - kj;
                    sj += d;
                    qj = Math.fma(d, d, qj);
                }
                sum[j] = sj;
                squares[j] = qj;
            }
        }
        for (; r < rows; r++) {
            int o = off + r * stride;
            for (int j = 0; j < width; j++) {
                float d = x[o + j] - k[koff + j];
                sum[j] += d;
                squares[j] = Math.fma(d, d, squares[j]);
            }
        }
    }

    @Override
    int mergeColumnBlock(float[] sum, float[] squares, int from, int to, int rows, double count, double f, double g,
            double[] mean, double[] m2, int c0) {
        // Loaded as vectors of S and widened half by half: a second float species here (a half-width
        // load) put a second vector class into FloatVector's shared methods, and every kernel that ran
        // after batch norm of (N, C) data lost its intrinsics (group norm backward of 8192x1024 in 32
        // groups: 8-20 ms a call instead of 2.5-3; docs/performance.md, 2026-11-28).
        int dl = D.length();
        double limit = Moments.ONE_PASS_LIMIT;
        int j = from;
        for (; j + L <= to; j += L) {
            FloatVector sums = FloatVector.fromArray(S, sum, j);
            FloatVector sq = FloatVector.fromArray(S, squares, j);
            for (int part = 0; part < L / dl; part++) {
                int jj = j + part * dl;
                DoubleVector s = (DoubleVector) sums.convertShape(VectorOperators.F2D, D, part);
                DoubleVector q = (DoubleVector) sq.convertShape(VectorOperators.F2D, D, part);
                // Moments.onePassM2, lane by lane: the sums finite and the cancellation within the limit.
                DoubleVector rm = s.div(rows);
                DoubleVector cancelled = rm.mul(s);
                DoubleVector rq = q.sub(cancelled);
                VectorMask<Double> plain = s.abs().lt(Double.POSITIVE_INFINITY)
                        .and(q.abs().lt(Double.POSITIVE_INFINITY)).and(cancelled.compare(VectorOperators.LE,
                                rq.mul(limit)));
                int c = c0 + jj;
                if (count == 0) {
                    if (!plain.allTrue()) {
                        return jj;
                    }
                    rm.intoArray(mean, c);
                    rq.intoArray(m2, c);
                    continue;
                }
                DoubleVector cm = DoubleVector.fromArray(D, mean, c);
                if (!plain.and(cm.abs().lt(Double.POSITIVE_INFINITY)).allTrue()) {
                    return jj;
                }
                // ChannelNorm.mergeColumn's arithmetic.
                DoubleVector delta = rm.sub(cm);
                cm.add(delta.mul(f)).intoArray(mean, c);
                DoubleVector.fromArray(D, m2, c).add(rq.add(delta.mul(delta).mul(g))).intoArray(m2, c);
            }
        }
        return j;
    }

    @Override
    void columnApply(float[] x, float[] y, int off, int width, float[] mu, float[] lo, float[] is, float[] w,
            float[] b) {
        int bound = width - (width % L);
        int j = 0;
        for (; j < bound; j += L) {
            FloatVector.fromArray(S, x, off + j).sub(FloatVector.fromArray(S, mu, j))
                    .sub(FloatVector.fromArray(S, lo, j)).mul(FloatVector.fromArray(S, is, j))
                    .fma(FloatVector.fromArray(S, w, j), FloatVector.fromArray(S, b, j)).intoArray(y, off + j);
        }
        for (; j < width; j++) {
            y[off + j] = Math.fma(((x[off + j] - mu[j]) - lo[j]) * is[j], w[j], b[j]);
        }
    }
}
