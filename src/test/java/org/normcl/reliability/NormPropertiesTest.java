package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntUnaryOperator;

import org.normcl.NormEngine;
import org.normcl.reference.Reference64;
import org.normcl.testing.Backends;
import org.normcl.testing.Tolerances;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * Property-based tests (jqwik): every operator on random shapes (rank 1-4, sizes 1-7 with odd ones,
 * now and then a zero or one long row of 1025-5000 values), axes, groups (divisors of C), epsilons
 * (1e-12..1e-1) and values (offsets up to 1e6, scales from 1e-30 up to 1e30, NaN and +-Inf
 * sprinkled), run on every backend of {@link Backends#all()} (Java, and each OpenCL device with
 * both kernel families) and checked against the float64 oracle {@link Reference64} within the
 * bounds of {@link Tolerances}: the same bounds the unit tests use, none looser.
 *
 * <p>Inputs are described by a few parameters (shape, op attributes, value profile, seed) that
 * jqwik shrinks, so a failure reports a minimal case: the smallest shape, no offset, unit scale, no
 * special values, whatever still fails.
 *
 * <p>Where the inputs hold NaN or an infinity, the slices that hold them (a row, an (N, group), an
 * (N, C), a batch-norm channel, an MVN group; one element for batch-norm inference) are not
 * checked element by element; every other slice must match the reference as if they were clean,
 * so a special value may not leak out of its slice.
 *
 * <p>Two preconditions of float32 statistics shape the values: the scale is capped so that the sum
 * of squared deviations (or, for RMS norm, of squares) of a slice stays below
 * {@code Float.MAX_VALUE / 256} (values whose variance overflows float32 have no float32 answer);
 * inputs below {@code 16 * Float.MIN_NORMAL} in magnitude are set to 0 (OpenCL lets devices flush
 * subnormals to zero).
 */
class NormPropertiesTest {
    private static final int TRIES = 200;
    private static final Map<String, AtomicLong> CASES = new TreeMap<>();
    private static final AtomicLong CHECKS = new AtomicLong();

    // ------------------------------------------------------------------ generation

    /**
     * How the values of X are drawn.
     *
     * @param offsetCode 0: no offset; k: offset +-10^(k-1), so up to 1e6
     * @param negative the sign of the offset
     * @param scaleExp the standard deviation is 10^scaleExp (capped, see the class comment)
     * @param specialsCode above 9: that many minus 9 NaN / +Inf / -Inf values are sprinkled
     * @param seed the data seed
     */
    record Profile(int offsetCode, boolean negative, int scaleExp, int specialsCode, long seed) {
        double offset() {
            return offsetCode == 0 ? 0 : (negative ? -1 : 1) * Math.pow(10, offsetCode - 1);
        }

        int specials() {
            return Math.max(0, specialsCode - 9);
        }

        @Override
        public String toString() {
            return "values{offset=" + offset() + ", scale=min(1e" + scaleExp + ", cap), specials=" + specials()
                    + ", seed=" + seed + "}";
        }
    }

    /** One generated case: the op, its shape, attribute choices (aux), epsilon and values. */
    record Gen(Op.Kind kind, long[] dims, int[] aux, double epsilon, Profile values) {
        @Override
        public String toString() {
            return kind + Arrays.toString(dims) + " aux=" + Arrays.toString(aux) + " eps=" + (float) epsilon + " "
                    + values;
        }
    }

    private static Arbitrary<Profile> profiles() {
        return Combinators.combine(Arbitraries.integers().between(0, 7), Arbitraries.of(false, true),
                Arbitraries.integers().between(-30, 30), Arbitraries.integers().between(0, 12),
                Arbitraries.longs().between(0, 1_000_000)).as(Profile::new);
    }

    /**
     * Shapes of rank {@code minRank..4}: each dimension 1-7 (0 with probability 1/64), and in one
     * case of ten a last dimension of 1025-5000 (a row longer than a work-group and than several
     * 1024-value runs) with the other dimensions at most 2.
     */
    private static Arbitrary<long[]> shapes(int minRank) {
        Arbitrary<Integer> dim = Arbitraries.integers().between(1, 64);
        return Combinators.combine(Arbitraries.integers().between(minRank, 4), dim.list().ofSize(4),
                Arbitraries.integers().between(0, 9), Arbitraries.integers().between(0, 3975)).as((rank, raw, longRow,
                        longLen) -> {
                    long[] d = new long[rank];
                    for (int i = 0; i < rank; i++) {
                        int r = raw.get(i);
                        d[i] = r == 64 ? 0 : 1 + (r - 1) % 7;
                    }
                    if (longRow == 9) {
                        for (int i = 0; i < rank - 1; i++) {
                            d[i] = Math.min(d[i], 2);
                        }
                        d[rank - 1] = 1025 + longLen;
                    }
                    return d;
                });
    }

    private static Arbitrary<Gen> cases(Op.Kind kind, int minRank) {
        return Combinators.combine(shapes(minRank), Arbitraries.integers().between(0, 1000).list().ofSize(6),
                Arbitraries.doubles().between(-12, -1), profiles()).as((dims, aux, epsExp, values) -> new Gen(kind,
                        dims, aux.stream().mapToInt(Integer::intValue).toArray(), Math.pow(10, epsExp), values));
    }

    @Provide
    Arbitrary<Gen> layer() {
        return cases(Op.Kind.LAYER, 1);
    }

    @Provide
    Arbitrary<Gen> rms() {
        return cases(Op.Kind.RMS, 1);
    }

    @Provide
    Arbitrary<Gen> group() {
        return cases(Op.Kind.GROUP, 2);
    }

    @Provide
    Arbitrary<Gen> instance() {
        return cases(Op.Kind.INSTANCE, 2);
    }

    @Provide
    Arbitrary<Gen> batchInference() {
        return cases(Op.Kind.BATCH_INFERENCE, 2);
    }

    @Provide
    Arbitrary<Gen> batchTraining() {
        return cases(Op.Kind.BATCH_TRAINING, 2);
    }

    @Provide
    Arbitrary<Gen> mvn() {
        return cases(Op.Kind.MVN, 1);
    }

    // ------------------------------------------------------------------ properties

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void layerNormMatchesReference(@ForAll("layer") Gen g) {
        check(g);
    }

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void rmsNormMatchesReference(@ForAll("rms") Gen g) {
        check(g);
    }

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void groupNormMatchesReference(@ForAll("group") Gen g) {
        check(g);
    }

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void instanceNormMatchesReference(@ForAll("instance") Gen g) {
        check(g);
    }

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void batchNormInferenceMatchesReference(@ForAll("batchInference") Gen g) {
        check(g);
    }

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void batchNormTrainingMatchesReference(@ForAll("batchTraining") Gen g) {
        check(g);
    }

    @Property(tries = TRIES, shrinking = ShrinkingMode.FULL)
    void meanVarianceNormMatchesReference(@ForAll("mvn") Gen g) {
        check(g);
    }

    @AfterContainer
    static void report() {
        long total = 0;
        StringBuilder sb = new StringBuilder();
        synchronized (CASES) {
            for (Map.Entry<String, AtomicLong> e : CASES.entrySet()) {
                total += e.getValue().get();
                sb.append(' ').append(e.getKey()).append('=').append(e.getValue().get());
            }
        }
        System.out.println("NormPropertiesTest: " + total + " generated cases (" + sb.toString().trim() + "), "
                + CHECKS.get() + " backend checks on " + Backends.all());
    }

    // ------------------------------------------------------------------ the check

    private static void check(Gen g) {
        synchronized (CASES) {
            CASES.computeIfAbsent(g.kind().toString(), k -> new AtomicLong()).incrementAndGet();
        }
        Built b = build(g);
        if (b.expectedError() != null) {
            for (Backends.Named be : Backends.all()) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> b.op().run(be.engine(), false), be + ": " + b.op());
                assertTrue(e.getMessage().contains(b.expectedError()), e.getMessage());
            }
            return;
        }
        Expected ex = expected(b);
        for (Backends.Named be : Backends.all()) {
            NormEngine engine = be.engine();
            Op.Out out = b.op().run(engine, false);
            CHECKS.incrementAndGet();
            verify(be + " " + b.op(), b, ex, out);
        }
    }

    /** An op with its data, and how its elements map to slices and affine entries. */
    private record Built(Op op, int[] sliceOfElement, int slices, IntUnaryOperator affineOf, String expectedError) {
    }

    /** The reference: Y, per-slice statistics, and the bound inputs per element. */
    private record Expected(double[] y, double[] mean, double[] invStd, double[] runMean, double[] runVar,
            double[] xhat, double[] meanOverSigma, int[] statOfElement) {
    }

    private static Built build(Gen g) {
        long[] dims = g.dims();
        int rank = dims.length;
        int n = (int) Reference64.size(dims);
        int[] aux = g.aux();
        SplittableRandom rnd = new SplittableRandom(g.values().seed());
        float eps = (float) g.epsilon();
        int[] slice = new int[n];
        switch (g.kind()) {
            case LAYER:
            case RMS: {
                int axis = aux[0] % (2 * rank) - rank; // in [-rank, rank)
                int a = axis < 0 ? axis + rank : axis;
                int cols = (int) product(dims, a, rank);
                int rows = (int) product(dims, 0, a);
                for (int i = 0; i < n; i++) {
                    slice[i] = i / cols;
                }
                float[] x = values(g.values(), n, cols, g.kind() == Op.Kind.RMS, rnd);
                float[] w = aux[1] % 3 != 2 ? gaussian(rnd, cols, 1, 0.5) : null;
                float[] bias = aux[2] % 3 != 2 ? gaussian(rnd, cols, 0, 0.5) : null;
                Op op = g.kind() == Op.Kind.LAYER ? Op.layer(dims, axis, eps, x, w, bias)
                        : Op.rms(dims, axis, eps, x, w);
                return new Built(op, slice, rows, i -> i % cols, null);
            }
            case GROUP: {
                int c = (int) dims[1];
                List<Integer> divisors = new ArrayList<>();
                for (int d = 1; d <= Math.max(c, 3); d++) {
                    if (c % d == 0) {
                        divisors.add(d);
                    }
                }
                int groups = divisors.get(aux[0] % divisors.size());
                boolean perGroup = aux[3] % 2 == 1;
                int spatial = (int) product(dims, 2, rank);
                int cols = c / groups * spatial;
                for (int i = 0; i < n; i++) {
                    slice[i] = i / cols;
                }
                float[] x = values(g.values(), n, cols, false, rnd);
                int affine = perGroup ? groups : c;
                float[] w = aux[1] % 3 != 2 ? gaussian(rnd, affine, 1, 0.5) : null;
                float[] bias = aux[2] % 3 != 2 ? gaussian(rnd, affine, 0, 0.5) : null;
                IntUnaryOperator aff = perGroup ? i -> (i / cols) % groups : i -> (i / spatial) % c;
                return new Built(Op.group(dims, groups, perGroup, eps, x, w, bias), slice, (int) dims[0] * groups, aff,
                        null);
            }
            case INSTANCE: {
                int c = (int) dims[1];
                int spatial = (int) product(dims, 2, rank);
                for (int i = 0; i < n; i++) {
                    slice[i] = i / spatial;
                }
                float[] x = values(g.values(), n, spatial, false, rnd);
                float[] w = aux[1] % 3 != 2 ? gaussian(rnd, c, 1, 0.5) : null;
                float[] bias = aux[2] % 3 != 2 ? gaussian(rnd, c, 0, 0.5) : null;
                return new Built(Op.instance(dims, eps, x, w, bias), slice, (int) dims[0] * c,
                        i -> (i / spatial) % c, null);
            }
            case BATCH_INFERENCE:
            case BATCH_TRAINING: {
                int c = (int) dims[1];
                int spatial = (int) product(dims, 2, rank);
                int count = (int) dims[0] * spatial;
                boolean training = g.kind() == Op.Kind.BATCH_TRAINING;
                for (int i = 0; i < n; i++) {
                    slice[i] = training ? (i / Math.max(1, spatial)) % c : i;
                }
                float[] x = values(g.values(), n, training ? count : 1, false, rnd);
                float[] w = aux[1] % 3 != 2 ? gaussian(rnd, c, 1, 0.5) : null;
                float[] bias = aux[2] % 3 != 2 ? gaussian(rnd, c, 0, 0.5) : null;
                double sd = scale(g.values(), Math.max(1, count), false);
                boolean running = !training || aux[3] % 3 != 2;
                float[] rm = running ? gaussian(rnd, c, g.values().offset(), sd) : null;
                float[] rv = null;
                if (running) {
                    rv = new float[c];
                    for (int i = 0; i < c; i++) {
                        rv[i] = flushTiny((float) (sd * sd * (0.5 + 1.5 * rnd.nextDouble())));
                    }
                }
                boolean pytorch = aux[4] % 2 == 1;
                Op op = training ? Op.batchTraining(dims, eps, pytorch, x, w, bias, rm, rv)
                        : Op.batchInference(dims, eps, x, w, bias, rm, rv);
                String error = training && count == 1 ? "more than 1 value per channel" : null;
                return new Built(op, slice, training ? c : n, i -> (i / Math.max(1, spatial)) % c, error);
            }
            case MVN: {
                // Kept dimensions are consecutive: [keepFrom, keepTo); at least one axis is reduced.
                int keepFrom = aux[0] % (rank + 1);
                int keepTo = Math.min(rank, keepFrom + aux[1] % (rank - keepFrom + 1));
                if (keepTo - keepFrom == rank) {
                    keepTo--;
                }
                List<Integer> axes = new ArrayList<>();
                for (int d = 0; d < rank; d++) {
                    if (d < keepFrom || d >= keepTo) {
                        axes.add(aux[2] % 2 == 0 ? d : d - rank);
                    }
                }
                long inner = product(dims, keepTo, rank);
                long channels = product(dims, keepFrom, keepTo);
                for (int i = 0; i < n; i++) {
                    slice[i] = (int) ((i / inner) % channels);
                }
                int perSlice = (int) (product(dims, 0, keepFrom) * inner);
                float[] x = values(g.values(), n, perSlice, false, rnd);
                return new Built(Op.mvn(dims, axes.stream().mapToInt(Integer::intValue).toArray(), eps, x), slice,
                        (int) channels, i -> 0, null);
            }
            default:
                throw new IllegalStateException(g.kind().toString());
        }
    }

    private static Expected expected(Built b) {
        Op op = b.op();
        float[] x = op.x();
        long[] dims = op.dims();
        int n = x.length;
        double[] xhat = new double[n];
        double[] mos = new double[n];
        int[] stat = b.sliceOfElement().clone();
        float eps = (float) op.epsilon();
        switch (op.kind()) {
            case LAYER:
            case GROUP:
            case INSTANCE: {
                Reference64.Normalized r = op.kind() == Op.Kind.LAYER
                        ? Reference64.layerNorm(x, dims, op.axis(), eps, op.scale(), op.bias())
                        : op.kind() == Op.Kind.GROUP
                                ? Reference64.groupNorm(x, dims, op.groups(), eps, op.scale(), op.bias(), op.perGroup())
                                : Reference64.instanceNorm(x, dims, eps, op.scale(), op.bias());
                for (int i = 0; i < n; i++) {
                    int s = stat[i];
                    xhat[i] = (x[i] - r.mean()[s]) * r.invStd()[s];
                    mos[i] = Math.abs(r.mean()[s]) * r.invStd()[s];
                }
                return new Expected(r.y(), r.mean(), r.invStd(), null, null, xhat, mos, stat);
            }
            case RMS: {
                Reference64.RmsNormalized r = Reference64.rmsNorm(x, dims, op.axis(), eps, op.scale());
                for (int i = 0; i < n; i++) {
                    xhat[i] = x[i] * r.invRms()[stat[i]];
                }
                return new Expected(r.y(), null, r.invRms(), null, null, xhat, mos, stat);
            }
            case BATCH_INFERENCE: {
                double[] y = Reference64.batchNormInference(x, dims, op.scale(), op.bias(), op.mean(), op.var(), eps);
                int c = (int) dims[1];
                double[] mean = new double[c];
                double[] inv = new double[c];
                for (int ch = 0; ch < c; ch++) {
                    mean[ch] = op.mean()[ch];
                    inv[ch] = 1 / Math.sqrt((double) op.var()[ch] + eps);
                }
                for (int i = 0; i < n; i++) {
                    int ch = b.affineOf().applyAsInt(i);
                    stat[i] = ch;
                    xhat[i] = (x[i] - mean[ch]) * inv[ch];
                    mos[i] = Math.abs(mean[ch]) * inv[ch];
                }
                return new Expected(y, mean, inv, null, null, xhat, mos, stat);
            }
            case BATCH_TRAINING: {
                int c = (int) dims[1];
                float[] rm = op.mean() != null ? op.mean() : new float[c];
                float[] rv = op.var() != null ? op.var() : new float[c];
                float momentum = (op.pytorch() ? org.normcl.MomentumConvention.PYTORCH
                        : org.normcl.MomentumConvention.ONNX).defaultMomentum();
                Reference64.BatchNormTraining r = Reference64.batchNormTraining(x, dims, op.scale(), op.bias(), rm, rv,
                        eps, momentum, op.pytorch());
                for (int i = 0; i < n; i++) {
                    int s = stat[i];
                    xhat[i] = (x[i] - r.mean()[s]) * r.invStd()[s];
                    mos[i] = Math.abs(r.mean()[s]) * r.invStd()[s];
                }
                return new Expected(r.y(), r.mean(), r.invStd(), op.mean() != null ? r.newRunningMean() : null,
                        op.var() != null ? r.newRunningVar() : null, xhat, mos, stat);
            }
            case MVN: {
                Reference64.Mvn r = Reference64.meanVarianceNormDetailed(x, dims, op.axes(), eps);
                int slices = b.slices();
                double[] mean = new double[slices];
                double[] inv = new double[slices];
                Arrays.fill(mean, Double.NaN);
                Arrays.fill(inv, Double.NaN);
                for (int i = 0; i < n; i++) {
                    int s = stat[i];
                    mean[s] = r.elementMean()[i];
                    inv[s] = 1 / (r.elementStd()[i] + eps);
                    xhat[i] = r.y()[i];
                    mos[i] = Math.abs(r.elementMean()[i]) * inv[s];
                }
                return new Expected(r.y(), mean, inv, null, null, xhat, mos, stat);
            }
            default:
                throw new IllegalStateException();
        }
    }

    private static void verify(String what, Built b, Expected e, Op.Out out) {
        Op op = b.op();
        float[] x = op.x();
        int n = x.length;
        boolean[] dirty = new boolean[b.slices()];
        for (int i = 0; i < n; i++) {
            if (!Float.isFinite(x[i])) {
                dirty[b.sliceOfElement()[i]] = true;
            }
        }
        // Y, element by element, on the clean slices.
        List<Integer> clean = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (!dirty[b.sliceOfElement()[i]]) {
                clean.add(i);
            }
        }
        float[] ya = new float[clean.size()];
        double[] ye = new double[clean.size()];
        double[] yb = new double[clean.size()];
        for (int k = 0; k < clean.size(); k++) {
            int i = clean.get(k);
            int a = b.affineOf().applyAsInt(i);
            double w = op.scale() == null ? 1 : op.scale()[a];
            double bias = op.bias() == null ? 0 : op.bias()[a];
            ya[k] = out.y()[i];
            ye[k] = e.y()[i];
            yb[k] = Tolerances.element(e.xhat()[i], e.meanOverSigma()[i], w, bias, e.y()[i]);
        }
        assertEquals(n, out.y().length, what + ": Y length");
        Tolerances.assertWithin(what + " Y", ya, ye, yb);

        // Statistics, per clean slice.
        if (op.kind() == Op.Kind.RMS) {
            assertNull(out.mean(), what + ": RMS norm has no mean");
        }
        boolean statsPerSlice = op.kind() != Op.Kind.BATCH_INFERENCE;
        int statCount = e.invStd().length;
        boolean[] statDirty = new boolean[statCount];
        if (statsPerSlice) {
            System.arraycopy(dirty, 0, statDirty, 0, statCount);
        }
        List<Integer> cs = new ArrayList<>();
        for (int s = 0; s < statCount; s++) {
            if (!statDirty[s]) {
                cs.add(s);
            }
        }
        int k = cs.size();
        float[] ia = new float[k];
        double[] ie = new double[k];
        double[] ib = new double[k];
        float[] ma = new float[k];
        double[] me = new double[k];
        double[] mb = new double[k];
        for (int j = 0; j < k; j++) {
            int s = cs.get(j);
            ia[j] = out.invStd()[s];
            ie[j] = e.invStd()[s];
            ib[j] = Tolerances.invStd(e.invStd()[s]);
            if (e.mean() != null) {
                ma[j] = out.mean()[s];
                me[j] = e.mean()[s];
                double sigma = 1 / e.invStd()[s];
                mb[j] = op.kind() == Op.Kind.BATCH_INFERENCE ? Double.MIN_NORMAL // a copy of the running mean
                        : Tolerances.mean(e.mean()[s], sigma);
            }
        }
        assertEquals(statCount, out.invStd().length, what + ": InvStdDev length");
        Tolerances.assertWithin(what + " InvStdDev", ia, ie, ib);
        if (e.mean() != null) {
            assertEquals(statCount, out.mean().length, what + ": Mean length");
            Tolerances.assertWithin(what + " Mean", ma, me, mb);
        }

        // Running statistics (batch-norm training), per clean channel.
        if (op.kind() == Op.Kind.BATCH_TRAINING) {
            if (op.mean() == null) {
                assertNull(out.runningMean(), what + ": no running statistics given");
                return;
            }
            long count = op.dims()[0] * product(op.dims(), 2, op.dims().length);
            if (count == 0) {
                // An empty batch leaves the running statistics unchanged (NormEngine's contract).
                assertTrue(Arrays.equals(op.mean(), out.runningMean()), what + ": running mean of an empty batch");
                assertTrue(Arrays.equals(op.var(), out.runningVar()), what + ": running var of an empty batch");
                return;
            }
            float[] rma = new float[k];
            double[] rme = new double[k];
            double[] rmb = new double[k];
            float[] rva = new float[k];
            double[] rve = new double[k];
            double[] rvb = new double[k];
            for (int j = 0; j < k; j++) {
                int s = cs.get(j);
                // As OperatorAccuracyTest: the batch statistic's bound, weighted, plus the update's roundings.
                double meanBound = Tolerances.mean(e.mean()[s], 1 / e.invStd()[s]);
                rma[j] = out.runningMean()[s];
                rme[j] = e.runMean()[s];
                rmb[j] = meanBound + 4 * Tolerances.U * (Math.abs(op.mean()[s]) + Math.abs(e.runMean()[s]));
                rva[j] = out.runningVar()[s];
                rve[j] = e.runVar()[s];
                rvb[j] = 64 * Tolerances.U * (Math.abs(op.var()[s]) + Math.abs(e.runVar()[s])
                        + 1 / (e.invStd()[s] * e.invStd()[s]));
            }
            Tolerances.assertWithin(what + " running mean", rma, rme, rmb);
            Tolerances.assertWithin(what + " running var", rva, rve, rvb);
        }
    }

    // ------------------------------------------------------------------ values

    /**
     * X: offset + scale * N(0, 1) per the profile, the scale capped so that {@code perSlice} squared
     * deviations (or squares, for RMS) sum below Float.MAX_VALUE / 256, tiny values flushed to 0,
     * then the profile's NaN / +Inf / -Inf values at random places.
     */
    private static float[] values(Profile p, int n, int perSlice, boolean rms, SplittableRandom rnd) {
        double sd = scale(p, Math.max(1, perSlice), rms);
        float[] x = gaussian(rnd, n, p.offset(), sd);
        for (int i = 0; i < n; i++) {
            x[i] = flushTiny(x[i]);
        }
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (int s = 0; s < p.specials() && n > 0; s++) {
            x[rnd.nextInt(n)] = specials[rnd.nextInt(3)];
        }
        return x;
    }

    private static double scale(Profile p, int perSlice, boolean rms) {
        double limit = Math.sqrt(Float.MAX_VALUE / 256.0 / perSlice); // largest |deviation| (or |x|, for RMS)
        double cap = Math.max(0, (rms ? limit - Math.abs(p.offset()) : limit) / 6); // |x - offset| < 6 sd
        return Math.min(Math.pow(10, p.scaleExp()), cap);
    }

    private static float flushTiny(float v) {
        return Math.abs(v) < 16 * Float.MIN_NORMAL ? 0f : v;
    }

    private static float[] gaussian(SplittableRandom rnd, int n, double offset, double sd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            double u1 = 1.0 - rnd.nextDouble();
            double u2 = rnd.nextDouble();
            a[i] = (float) (offset + sd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return a;
    }

    private static long product(long[] dims, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) {
            p *= dims[i];
        }
        return p;
    }
}
