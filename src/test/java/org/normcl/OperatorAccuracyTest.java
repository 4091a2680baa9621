package org.normcl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.Tolerances;

/**
 * Every operator on every backend (Java, and each OpenCL device with both kernel families) against
 * the independent float64 oracle {@link Reference64}, with the bounds of {@link Tolerances}. The
 * shapes include the edge cases kernels get wrong: hidden size 1, odd sizes, rows much longer than a
 * work-group (65537 and 200003), channels of millions of values, groups larger than any local
 * memory, a large common offset (1e4 on unit variance), NaN confined to its slice.
 */
class OperatorAccuracyTest {

    /** A test case: an operator on generated inputs. */
    interface Case {
        void check(NormEngine engine);
    }

    record Named(String name, Case body) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        List<Named> cases = new ArrayList<>();
        // ---- layer norm
        cases.add(layer("ln 1x1", new long[] {1, 1}, -1, 0, 1, true, true));
        cases.add(layer("ln hidden 1", new long[] {7, 1}, -1, 0, 1, true, true));
        cases.add(layer("ln odd 5x13", new long[] {5, 13}, -1, 0, 1, true, true));
        cases.add(layer("ln 3x7x9 axis 1", new long[] {3, 7, 9}, 1, 0.5, 2, true, true));
        cases.add(layer("ln 2x3x4x5 axis -3", new long[] {2, 3, 4, 5}, -3, 0, 1, true, false));
        cases.add(layer("ln axis 0", new long[] {3, 4, 5}, 0, 0, 1, false, false));
        cases.add(layer("ln 64x1024 no affine", new long[] {64, 1024}, -1, 3, 2, false, false));
        cases.add(layer("ln long rows 3x65537", new long[] {3, 65537}, -1, -2, 3, true, true));
        cases.add(layer("ln one long row 1x200003", new long[] {1, 200003}, -1, 1, 1, true, true));
        cases.add(layer("ln offset 1e4", new long[] {16, 1031}, -1, 1e4, 1, true, true));
        cases.add(layer("ln offset 1e4 long", new long[] {2, 70001}, -1, -1e4, 1, true, true));
        cases.add(layer("ln tiny 1e-20", new long[] {6, 33}, -1, 0, 1e-20, true, true));
        cases.add(layer("ln huge 1e15", new long[] {6, 33}, -1, 1e15, 1e15, true, true));
        cases.add(nanRow());
        // ---- RMS norm
        cases.add(rms("rms 5x13", new long[] {5, 13}, -1, 0, 1, true));
        cases.add(rms("rms hidden 1", new long[] {9, 1}, -1, 0, 1, true));
        cases.add(rms("rms long 2x65537", new long[] {2, 65537}, -1, 0, 1, true));
        cases.add(rms("rms 3x5x7 axis -2", new long[] {3, 5, 7}, -2, 0, 1, false));
        cases.add(rms("rms offset 1e4", new long[] {8, 257}, -1, 1e4, 1, true));
        // ---- group norm
        cases.add(group("gn 2x6x5x5 G3", new long[] {2, 6, 5, 5}, 3, false, 0, 1, true));
        cases.add(group("gn G1", new long[] {2, 6, 3, 3}, 1, false, 0, 1, true));
        cases.add(group("gn G=C", new long[] {2, 6, 3, 3}, 6, false, 0, 1, true));
        cases.add(group("gn per-group affine", new long[] {3, 4, 2, 2}, 2, true, 0, 1, true));
        cases.add(group("gn odd 3x4x7 G2", new long[] {3, 4, 7}, 2, false, 1, 2, true));
        cases.add(group("gn rank 2", new long[] {5, 8}, 4, false, 0, 1, true));
        cases.add(group("gn group > local memory 1x4x512x512 G1", new long[] {1, 4, 512, 512}, 1, false, 2, 1, true));
        cases.add(group("gn offset 1e4", new long[] {2, 8, 9, 9}, 4, false, 1e4, 1, true));
        cases.add(group("gn no affine", new long[] {2, 8, 9, 9}, 2, false, 0, 1, false));
        cases.add(group("gn NaN confined to its group", new long[] {2, 6, 5, 5}, 3, false, 0, 1, true));
        // ---- instance norm
        cases.add(instance("in 2x3x4x5", new long[] {2, 3, 4, 5}, 0, 1, true));
        cases.add(instance("in spatial 1", new long[] {4, 3, 1}, 0, 1, true));
        cases.add(instance("in long 2x3x70001", new long[] {2, 3, 70001}, 5, 3, true));
        cases.add(instance("in offset 1e4", new long[] {2, 4, 31}, 1e4, 1, false));
        // ---- batch norm
        cases.add(batchInference("bn inference 2x3x4x5", new long[] {2, 3, 4, 5}));
        cases.add(batchInference("bn inference rank 2", new long[] {64, 10}));
        cases.add(batchTraining("bn train onnx", new long[] {4, 3, 5, 5}, MomentumConvention.ONNX, Float.NaN, 0, 1));
        cases.add(batchTraining("bn train pytorch", new long[] {4, 3, 5, 5}, MomentumConvention.PYTORCH, Float.NaN, 0,
                1));
        cases.add(batchTraining("bn train momentum 0.8", new long[] {3, 5, 7}, MomentumConvention.ONNX, 0.8f, 0, 1));
        cases.add(batchTraining("bn train rank 2", new long[] {64, 10}, MomentumConvention.PYTORCH, Float.NaN, 0, 1));
        cases.add(batchTraining("bn train 2 values per channel", new long[] {2, 3}, MomentumConvention.PYTORCH,
                Float.NaN, 0, 1));
        cases.add(batchTraining("bn train channel of 1.2M values", new long[] {4, 2, 600, 512},
                MomentumConvention.ONNX, Float.NaN, 3, 2));
        cases.add(batchTraining("bn train offset 1e4", new long[] {8, 3, 33, 17}, MomentumConvention.ONNX, Float.NaN,
                1e4, 1));
        // ---- mean-variance normalization
        cases.add(mvn("mvn default axes", new long[] {3, 3, 3, 1}, new int[] {0, 2, 3}));
        cases.add(mvn("mvn axes 2,3", new long[] {2, 3, 4, 5}, new int[] {2, 3}));
        cases.add(mvn("mvn all axes", new long[] {2, 3, 4, 5}, new int[] {0, 1, 2, 3}));
        cases.add(mvn("mvn axes 0 of rank 2", new long[] {50, 7}, new int[] {0}));
        List<Arguments> args = new ArrayList<>();
        for (Backends.Named b : Backends.all()) {
            for (Named c : cases) {
                args.add(Arguments.of(b, c));
            }
        }
        return args.stream();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("cases")
    void matchesFloat64Reference(Backends.Named backend, Named c) {
        Tolerances.onBackend(backend.name());
        c.body().check(backend.engine());
    }

    // ------------------------------------------------------------------ layer / rms

    private static Named layer(String name, long[] dims, int axis, double offset, double sd, boolean withScale,
            boolean withBias) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            int ax = s.normalizeAxis(axis, "axis");
            int cols = (int) s.product(ax, s.rank());
            float[] x = Data.gaussian(name, s.intSize(), offset, sd);
            float[] w = withScale ? Data.gaussian(name + "w", cols, 1, 0.5) : null;
            float[] b = withBias ? Data.gaussian(name + "b", cols, 0, 0.5) : null;
            long[] affineDims = s.slice(ax, s.rank()).dims();
            try (NormResult r = engine.layerNorm(LayerNorm.defaults().withAxis(axis), HostTensor.of(x, s),
                    w == null ? null : HostTensor.of(w, affineDims), b == null ? null : HostTensor.of(b, affineDims))) {
                Reference64.Normalized ref = Reference64.layerNorm(x, dims, axis, 1e-5f, w, b);
                checkRows(name, x, cols, ref.mean(), ref.invStd(), w, b, i -> i % cols, r, ref.y());
                long[] statDims = s.dims();
                for (int i = ax; i < statDims.length; i++) {
                    statDims[i] = 1;
                }
                assertArrayEquals(statDims, r.mean().shape().dims(), "Mean shape");
                assertArrayEquals(statDims, r.invStdDev().shape().dims(), "InvStdDev shape");
            }
        });
    }

    private static Named nanRow() {
        String name = "ln NaN and Inf confined to their rows";
        int cols = 2500; // several runs of 1024 per row, so the merge of runs meets the Inf too
        return new Named(name, engine -> {
            long[] dims = {4, cols};
            float[] x = Data.gaussian(name, 4 * cols, 0, 1);
            x[2 * cols + 17] = Float.NaN;
            x[3 * cols + 1500] = Float.POSITIVE_INFINITY;
            float[] w = Data.gaussian(name + "w", cols, 1, 0.5);
            try (NormResult r = engine.layerNorm(LayerNorm.defaults(), HostTensor.of(x, dims), HostTensor.of(w, cols),
                    null)) {
                Reference64.Normalized ref = Reference64.layerNorm(x, dims, -1, 1e-5f, w, null);
                checkRows(name, x, cols, ref.mean(), ref.invStd(), w, null, i -> i % cols, r, ref.y());
                float[] y = r.y().toHost().data();
                for (int i = 0; i < y.length; i++) {
                    int row = i / cols;
                    assertEquals(row >= 2, Float.isNaN(y[i]), "NaN only in rows 2 (NaN) and 3 (Inf), at " + i);
                }
                assertEquals(Float.POSITIVE_INFINITY, r.mean().toHost().data()[3], "mean of a row with +Inf");
            }
        });
    }

    private static Named rms(String name, long[] dims, int axis, double offset, double sd, boolean withScale) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            int ax = s.normalizeAxis(axis, "axis");
            int cols = (int) s.product(ax, s.rank());
            float[] x = Data.gaussian(name, s.intSize(), offset, sd);
            float[] w = withScale ? Data.gaussian(name + "w", cols, 1, 0.5) : null;
            try (NormResult r = engine.rmsNorm(RmsNorm.defaults().withAxis(axis), HostTensor.of(x, s),
                    w == null ? null : HostTensor.of(w, s.slice(ax, s.rank())))) {
                Reference64.RmsNormalized ref = Reference64.rmsNorm(x, dims, axis, 1e-5f, w);
                assertNull(r.mean(), "RMS norm has no mean");
                double[] bound = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    double inv = ref.invRms()[i / cols];
                    double wi = w == null ? 1 : w[i % cols];
                    bound[i] = Tolerances.element(x[i] * inv, 0, wi, 0, ref.y()[i]);
                }
                Tolerances.assertWithin(name + " Y", r.y().toHost().data(), ref.y(), bound);
                Tolerances.assertWithin(name + " InvRms", r.invStdDev().toHost().data(), ref.invRms(),
                        map(ref.invRms(), Tolerances::invStd));
            }
        });
    }

    /** Checks Y, Mean and InvStdDev of a row normalization (rows of {@code cols} values). */
    private static void checkRows(String name, float[] x, int cols, double[] mean, double[] inv, float[] w, float[] b,
            java.util.function.IntUnaryOperator affineIndex, NormResult r, double[] yRef) {
        double[] bound = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int row = i / cols;
            double sigma = 1 / inv[row];
            int a = affineIndex.applyAsInt(i);
            bound[i] = Tolerances.element((x[i] - mean[row]) * inv[row], Math.abs(mean[row]) / sigma,
                    w == null ? 1 : w[a], b == null ? 0 : b[a], yRef[i]);
        }
        Tolerances.assertWithin(name + " Y", r.y().toHost().data(), yRef, bound);
        double[] meanBound = new double[mean.length];
        for (int i = 0; i < mean.length; i++) {
            meanBound[i] = Tolerances.mean(mean[i], 1 / inv[i]);
        }
        Tolerances.assertWithin(name + " Mean", r.mean().toHost().data(), mean, meanBound);
        Tolerances.assertWithin(name + " InvStdDev", r.invStdDev().toHost().data(), inv,
                map(inv, Tolerances::invStd));
    }

    // ------------------------------------------------------------------ group / instance

    private static Named group(String name, long[] dims, int groups, boolean perGroup, double offset, double sd,
            boolean affine) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            int c = (int) dims[1];
            int spatial = (int) s.product(2, s.rank());
            int cols = c / groups * spatial;
            int affineSize = perGroup ? groups : c;
            float[] x = Data.gaussian(name, s.intSize(), offset, sd);
            if (name.contains("NaN")) {
                x[cols + 1] = Float.NaN;
            }
            float[] w = affine ? Data.gaussian(name + "w", affineSize, 1, 0.5) : null;
            float[] b = affine ? Data.gaussian(name + "b", affineSize, 0, 0.5) : null;
            GroupNorm spec = GroupNorm.of(groups).withAffine(perGroup ? GroupNorm.Affine.PER_GROUP
                    : GroupNorm.Affine.PER_CHANNEL);
            try (NormResult r = engine.groupNorm(spec, HostTensor.of(x, s), w == null ? null : HostTensor.of(w,
                    affineSize), b == null ? null : HostTensor.of(b, affineSize))) {
                Reference64.Normalized ref = Reference64.groupNorm(x, dims, groups, 1e-5f, w, b, perGroup);
                checkRows(name, x, cols, ref.mean(), ref.invStd(), w, b,
                        i -> perGroup ? (i / cols) % groups : (i / spatial) % c, r, ref.y());
                assertArrayEquals(new long[] {dims[0], groups}, r.mean().shape().dims(), "Mean shape (N, G)");
            }
        });
    }

    private static Named instance(String name, long[] dims, double offset, double sd, boolean affine) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            int c = (int) dims[1];
            int spatial = (int) s.product(2, s.rank());
            float[] x = Data.gaussian(name, s.intSize(), offset, sd);
            float[] w = affine ? Data.gaussian(name + "w", c, 1, 0.5) : null;
            float[] b = affine ? Data.gaussian(name + "b", c, 0, 0.5) : null;
            try (NormResult r = engine.instanceNorm(InstanceNorm.defaults(), HostTensor.of(x, s),
                    w == null ? null : HostTensor.of(w, c), b == null ? null : HostTensor.of(b, c))) {
                Reference64.Normalized ref = Reference64.instanceNorm(x, dims, 1e-5f, w, b);
                checkRows(name, x, spatial, ref.mean(), ref.invStd(), w, b, i -> (i / spatial) % c, r, ref.y());
                assertArrayEquals(new long[] {dims[0], dims[1]}, r.mean().shape().dims(), "Mean shape (N, C)");
            }
        });
    }

    // ------------------------------------------------------------------ batch norm

    private static Named batchInference(String name, long[] dims) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            int c = (int) dims[1];
            int spatial = (int) s.product(2, s.rank());
            float[] x = Data.gaussian(name, s.intSize(), 1, 2);
            float[] w = Data.gaussian(name + "w", c, 1, 0.5);
            float[] b = Data.gaussian(name + "b", c, 0, 0.5);
            float[] rm = Data.gaussian(name + "m", c, 1, 0.5);
            float[] rv = Data.uniform(name + "v", c, 0.5, 4);
            try (NormResult r = engine.batchNorm(BatchNorm.defaults(), HostTensor.of(x, s), HostTensor.of(w, c),
                    HostTensor.of(b, c), HostTensor.of(rm, c), HostTensor.of(rv, c))) {
                double[] yRef = Reference64.batchNormInference(x, dims, w, b, rm, rv, 1e-5f);
                double[] bound = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    int ch = (i / spatial) % c;
                    double inv = 1 / Math.sqrt(rv[ch] + (double) 1e-5f);
                    bound[i] = Tolerances.element((x[i] - rm[ch]) * inv, Math.abs(rm[ch]) * inv, w[ch], b[ch], yRef[i]);
                }
                Tolerances.assertWithin(name + " Y", r.y().toHost().data(), yRef, bound);
                assertNull(r.runningMean(), "no running update in inference");
            }
        });
    }

    private static Named batchTraining(String name, long[] dims, MomentumConvention conv, float momentum,
            double offset, double sd) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            int c = (int) dims[1];
            int spatial = (int) s.product(2, s.rank());
            float[] x = Data.gaussian(name, s.intSize(), offset, sd);
            float[] w = Data.gaussian(name + "w", c, 1, 0.5);
            float[] b = Data.gaussian(name + "b", c, 0, 0.5);
            float[] rm = Data.gaussian(name + "m", c, 0, 0.5);
            float[] rv = Data.uniform(name + "v", c, 0.5, 2);
            BatchNorm spec = BatchNorm.defaults().withTraining(true).withConvention(conv);
            if (!Float.isNaN(momentum)) {
                spec = spec.withMomentum(momentum);
            }
            try (NormResult r = engine.batchNorm(spec, HostTensor.of(x, s), HostTensor.of(w, c), HostTensor.of(b, c),
                    HostTensor.of(rm, c), HostTensor.of(rv, c))) {
                Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, dims, w, b, rm, rv, 1e-5f,
                        spec.momentum(), conv == MomentumConvention.PYTORCH);
                double[] bound = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    int ch = (i / spatial) % c;
                    double inv = ref.invStd()[ch];
                    bound[i] = Tolerances.element((x[i] - ref.mean()[ch]) * inv, Math.abs(ref.mean()[ch]) * inv, w[ch],
                            b[ch], ref.y()[i]);
                }
                Tolerances.assertWithin(name + " Y", r.y().toHost().data(), ref.y(), bound);
                double[] meanBound = new double[c];
                double[] runMeanBound = new double[c];
                double[] runVarBound = new double[c];
                for (int ch = 0; ch < c; ch++) {
                    meanBound[ch] = Tolerances.mean(ref.mean()[ch], 1 / ref.invStd()[ch]);
                    // the running update adds two products: the batch statistic's error, weighted, plus two roundings
                    runMeanBound[ch] = meanBound[ch] + 4 * Tolerances.U * (Math.abs(rm[ch])
                            + Math.abs(ref.newRunningMean()[ch]));
                    runVarBound[ch] = 64 * Tolerances.U * (Math.abs(rv[ch]) + Math.abs(ref.newRunningVar()[ch])
                            + 1 / (ref.invStd()[ch] * ref.invStd()[ch]));
                }
                Tolerances.assertWithin(name + " Mean", r.mean().toHost().data(), ref.mean(), meanBound);
                Tolerances.assertWithin(name + " InvStdDev", r.invStdDev().toHost().data(), ref.invStd(),
                        map(ref.invStd(), Tolerances::invStd));
                Tolerances.assertWithin(name + " running mean", r.runningMean().toHost().data(), ref.newRunningMean(),
                        runMeanBound);
                Tolerances.assertWithin(name + " running var", r.runningVar().toHost().data(), ref.newRunningVar(),
                        runVarBound);
            }
        });
    }

    // ------------------------------------------------------------------ MVN

    private static Named mvn(String name, long[] dims, int[] axes) {
        return new Named(name, engine -> {
            Shape s = Shape.of(dims);
            float[] x = Data.gaussian(name, s.intSize(), 2, 3);
            try (NormResult r = engine.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(axes),
                    HostTensor.of(x, s))) {
                double[] yRef = Reference64.meanVarianceNorm(x, dims, axes);
                // Data are N(2, 3): |mean|/sigma is about 2/3, and the normalized value is y itself.
                double[] bound = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    bound[i] = Tolerances.element(yRef[i], 1, 1, 0, yRef[i]);
                }
                Tolerances.assertWithin(name + " Y", r.y().toHost().data(), yRef, bound);
            }
        });
    }

    private static double[] map(double[] a, java.util.function.DoubleUnaryOperator f) {
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = f.applyAsDouble(a[i]);
        }
        return out;
    }
}
