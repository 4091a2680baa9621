package org.normcl.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Tests of the float64 oracle {@link Reference64} itself: hand-computable cases, algebraic
 * identities between the operators, and the 54 ONNX backend node-test vectors in
 * {@code test-data/onnx} (each checked with the case's own rtol/atol).
 */
class Reference64Test {

    private static final double EXACT = 1e-15;

    // ------------------------------------------------------------------------------------------
    // hand-computable cases
    // ------------------------------------------------------------------------------------------

    @Test
    void layerNormOfOneTwoThreeFour() {
        // mean 2.5, var ((1.5^2 + 0.5^2) * 2) / 4 = 1.25
        Reference64.Normalized r = Reference64.layerNorm(new float[] {1, 2, 3, 4}, new long[] {1, 4}, -1, 0f, null, null);
        assertArrayEquals(new double[] {2.5}, r.mean(), 0.0);
        assertArrayEquals(new double[] {1.0 / Math.sqrt(1.25)}, r.invStd(), EXACT);
        double s = Math.sqrt(1.25);
        assertArrayEquals(new double[] {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, r.y(), EXACT);
    }

    @Test
    void layerNormEpsilonScaleAndBias() {
        float eps = 0.1f;
        Reference64.Normalized r = Reference64.layerNorm(new float[] {1, 2, 3, 4, 10, 10, 10, 10}, new long[] {2, 4},
                1, eps, new float[] {2, 2, 2, 2}, new float[] {0, 1, 0, -1});
        double is0 = 1.0 / Math.sqrt(1.25 + (double) eps);
        double is1 = 1.0 / Math.sqrt((double) eps); // constant row: var 0
        assertArrayEquals(new double[] {2.5, 10.0}, r.mean(), 0.0);
        assertArrayEquals(new double[] {is0, is1}, r.invStd(), EXACT);
        assertArrayEquals(new double[] {-3 * is0, -is0 + 1, is0, 3 * is0 - 1, 0, 1, 0, -1}, r.y(), EXACT);
    }

    @Test
    void layerNormAxisZeroAndNegativeAxisAreTheSame() {
        float[] x = {1, 5, 2, 8, -3, 4};
        long[] shape = {2, 3};
        Reference64.Normalized a = Reference64.layerNorm(x, shape, 0, 1e-5f, null, null);
        Reference64.Normalized b = Reference64.layerNorm(x, shape, -2, 1e-5f, null, null);
        assertEquals(1, a.mean().length);
        assertEquals(17.0 / 6.0, a.mean()[0], EXACT);
        assertArrayEquals(a.y(), b.y(), 0.0);
        assertArrayEquals(a.invStd(), b.invStd(), 0.0);
        assertThrows(IllegalArgumentException.class, () -> Reference64.layerNorm(x, shape, 2, 0f, null, null));
        assertThrows(IllegalArgumentException.class, () -> Reference64.layerNorm(x, shape, -3, 0f, null, null));
        assertThrows(IllegalArgumentException.class, () -> Reference64.layerNorm(x, shape, 1, 0f, new float[2], null));
        assertThrows(IllegalArgumentException.class, () -> Reference64.layerNorm(x, new long[] {7}, 0, 0f, null, null));
    }

    @Test
    void layerNormUsesTheFloat32EpsilonWidenedExactly() {
        // 1e-5f is not 1e-5: the reference must use (double) 1e-5f.
        Reference64.Normalized r = Reference64.layerNorm(new float[] {3, 3}, new long[] {2}, 0, 1e-5f, null, null);
        assertEquals(1.0 / Math.sqrt((double) 1e-5f), r.invStd()[0], 0.0);
        assertFalse(1.0 / Math.sqrt(1e-5) == r.invStd()[0]);
    }

    @Test
    void layerNormNaNAndInfStayInTheirRow() {
        float[] x = {1, 2, 3, Float.NaN, 4, 5, 1, Float.POSITIVE_INFINITY, 2, 7, 8, 9};
        Reference64.Normalized r = Reference64.layerNorm(x, new long[] {4, 3}, 1, 1e-5f, null, null);
        assertTrue(Double.isFinite(r.mean()[0]) && Double.isFinite(r.mean()[3]));
        assertTrue(Double.isNaN(r.mean()[1]) && Double.isNaN(r.invStd()[1]));
        assertEquals(Double.POSITIVE_INFINITY, r.mean()[2]);
        assertTrue(Double.isNaN(r.invStd()[2]));
        for (int i = 0; i < 12; i++) {
            int row = i / 3;
            assertEquals(row == 1 || row == 2, Double.isNaN(r.y()[i]), "y[" + i + "]");
        }
    }

    @Test
    void layerNormEmptyBatch() {
        Reference64.Normalized r = Reference64.layerNorm(new float[0], new long[] {0, 8}, -1, 1e-5f, new float[8], new float[8]);
        assertEquals(0, r.y().length);
        assertEquals(0, r.mean().length);
        assertEquals(0, r.invStd().length);
    }

    @Test
    void rmsNormOfOneTwoThreeFour() {
        // mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5
        Reference64.RmsNormalized r = Reference64.rmsNorm(new float[] {1, 2, 3, 4}, new long[] {4}, 0, 0f,
                new float[] {1, 1, 2, 2});
        double ir = 1.0 / Math.sqrt(7.5);
        assertArrayEquals(new double[] {ir}, r.invRms(), EXACT);
        assertArrayEquals(new double[] {ir, 2 * ir, 6 * ir, 8 * ir}, r.y(), EXACT);
        Reference64.RmsNormalized noScale = Reference64.rmsNorm(new float[] {0, 0}, new long[] {1, 2}, -1, 0.25f, null);
        assertArrayEquals(new double[] {2.0}, noScale.invRms(), 0.0);
        assertArrayEquals(new double[] {0, 0}, noScale.y(), 0.0);
    }

    @Test
    void groupNormByHand() {
        // N=1, C=4, S=2, G=2: group 0 = channels 0,1 = {1,2,3,4}; group 1 = channels 2,3 = {10,10,10,10}
        float[] x = {1, 2, 3, 4, 10, 10, 10, 10};
        long[] shape = {1, 4, 2};
        Reference64.Normalized r = Reference64.groupNorm(x, shape, 2, 0f,
                new float[] {1, 2, 3, 4}, new float[] {0, 0, 5, 6}, false);
        double s = Math.sqrt(1.25);
        assertArrayEquals(new double[] {2.5, 10}, r.mean(), 0.0);
        assertEquals(1.0 / s, r.invStd()[0], EXACT);
        assertEquals(Double.POSITIVE_INFINITY, r.invStd()[1]); // var 0 and eps 0
        assertArrayEquals(new double[] {-1.5 / s, -0.5 / s, 2 * 0.5 / s, 2 * 1.5 / s}, java.util.Arrays.copyOf(r.y(), 4), EXACT);
        // per-group affine: group g uses scale[g], bias[g] for all its channels
        Reference64.Normalized pg = Reference64.groupNorm(x, shape, 2, 1f, new float[] {2, 3}, new float[] {1, -1}, true);
        double is = 1.0 / Math.sqrt(2.25);
        assertArrayEquals(new double[] {-3 * is + 1, -is + 1, is + 1, 3 * is + 1, -1, -1, -1, -1}, pg.y(), EXACT);
        assertThrows(IllegalArgumentException.class, () -> Reference64.groupNorm(x, shape, 3, 0f, null, null, false));
        assertThrows(IllegalArgumentException.class,
                () -> Reference64.groupNorm(x, shape, 2, 0f, new float[2], null, false));
    }

    @Test
    void groupNormIdentities() {
        Random rnd = new Random(7);
        long[] shape = {3, 6, 4, 5};
        float[] x = randomFloats(rnd, 3 * 6 * 20, 0.5, 2.0);
        float[] scaleC = randomFloats(rnd, 6, 1.0, 0.3);
        float[] biasC = randomFloats(rnd, 6, 0.0, 0.3);
        float eps = 1e-5f;
        // G = C is instance norm
        Reference64.Normalized g = Reference64.groupNorm(x, shape, 6, eps, scaleC, biasC, false);
        Reference64.Normalized in = Reference64.instanceNorm(x, shape, eps, scaleC, biasC);
        assertArrayEquals(in.y(), g.y(), 1e-13);
        assertArrayEquals(in.mean(), g.mean(), 1e-13);
        assertArrayEquals(in.invStd(), g.invStd(), 1e-13);
        // G = 1 without affine is layer norm over axis 1
        Reference64.Normalized g1 = Reference64.groupNorm(x, shape, 1, eps, null, null, false);
        Reference64.Normalized ln = Reference64.layerNorm(x, shape, 1, eps, null, null);
        assertArrayEquals(ln.y(), g1.y(), 1e-13);
        assertArrayEquals(ln.mean(), g1.mean(), 1e-13);
        // per-group affine == per-channel affine with the group's value repeated
        float[] scaleG = {1.5f, -0.5f, 2f};
        float[] biasG = {0.25f, 0f, -1f};
        float[] scaleRep = {1.5f, 1.5f, -0.5f, -0.5f, 2f, 2f};
        float[] biasRep = {0.25f, 0.25f, 0f, 0f, -1f, -1f};
        assertArrayEquals(Reference64.groupNorm(x, shape, 3, eps, scaleRep, biasRep, false).y(),
                Reference64.groupNorm(x, shape, 3, eps, scaleG, biasG, true).y(), 0.0);
        // MVN over the spatial axes is instance norm without affine, eps moved out of the sqrt
        double[] mvn = Reference64.meanVarianceNorm(x, shape, new int[] {2, 3}, 0.0);
        assertArrayEquals(Reference64.instanceNorm(x, shape, 0f, null, null).y(), mvn, 1e-13);
    }

    @Test
    void instanceNormSpatialOneGivesBias() {
        Reference64.Normalized r = Reference64.instanceNorm(new float[] {5, -7, 3, 100}, new long[] {2, 2, 1}, 1e-5f,
                new float[] {3, 4}, new float[] {0.5f, -2f});
        assertArrayEquals(new double[] {0.5, -2, 0.5, -2}, r.y(), 0.0);
        assertArrayEquals(new double[] {5, -7, 3, 100}, r.mean(), 0.0);
    }

    @Test
    void batchNormInferenceByHand() {
        // x - 1 for x in 1..4: (x - 2) / sqrt(4) * 2 + 1
        double[] y = Reference64.batchNormInference(new float[] {1, 2, 3, 4}, new long[] {4, 1},
                new float[] {2}, new float[] {1}, new float[] {2}, new float[] {4}, 0f);
        assertArrayEquals(new double[] {0, 1, 2, 3}, y, 0.0);
        // two channels, spatial 2: channel index is (n*C + c)
        double[] y2 = Reference64.batchNormInference(new float[] {1, 1, 5, 5, 3, 3, 9, 9}, new long[] {2, 2, 2},
                null, null, new float[] {1, 5}, new float[] {1, 16}, 0f);
        assertArrayEquals(new double[] {0, 0, 0, 0, 2, 2, 1, 1}, y2, 0.0);
    }

    @Test
    void batchNormTrainingOnnxConvention() {
        float m = 0.9f;
        Reference64.BatchNormTraining r = Reference64.batchNormTraining(new float[] {1, 2, 3, 4}, new long[] {4, 1},
                null, null, new float[] {0}, new float[] {1}, 0f, m, false);
        assertArrayEquals(new double[] {2.5}, r.mean(), 0.0);
        assertArrayEquals(new double[] {1 / Math.sqrt(1.25)}, r.invStd(), EXACT);
        double md = m; // 0.89999997615814208984375
        assertArrayEquals(new double[] {0 * md + 2.5 * (1 - md)}, r.newRunningMean(), EXACT);
        assertArrayEquals(new double[] {1 * md + 1.25 * (1 - md)}, r.newRunningVar(), EXACT); // biased var
        double s = Math.sqrt(1.25);
        assertArrayEquals(new double[] {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, r.y(), EXACT);
    }

    @Test
    void batchNormTrainingPytorchConvention() {
        float m = 0.1f;
        // channel 0 over n=2 samples x spatial 2 = {1,2,3,4}; channel 1 = {0,0,0,8}
        float[] x = {1, 2, 0, 0, 3, 4, 0, 8};
        Reference64.BatchNormTraining r = Reference64.batchNormTraining(x, new long[] {2, 2, 2},
                new float[] {1, 1}, new float[] {0, 0}, new float[] {1, 2}, new float[] {3, 4}, 0f, m, true);
        double md = m;
        assertArrayEquals(new double[] {2.5, 2}, r.mean(), 0.0);
        assertArrayEquals(new double[] {(1 - md) * 1 + md * 2.5, (1 - md) * 2 + md * 2}, r.newRunningMean(), EXACT);
        // unbiased: 1.25 * 4/3 = 5/3; channel 1: biased var (4+4+4+36)/4 = 12, unbiased 16
        assertArrayEquals(new double[] {(1 - md) * 3 + md * (5.0 / 3.0), (1 - md) * 4 + md * 16}, r.newRunningVar(), 1e-14);
        assertEquals(1 / Math.sqrt(12), r.invStd()[1], EXACT); // y uses the biased variance
    }

    @Test
    void meanVarianceNormByHand() {
        double s = Math.sqrt(1.25);
        double[] y = Reference64.meanVarianceNorm(new float[] {1, 2, 3, 4}, new long[] {4}, new int[] {0}, 0.0);
        assertArrayEquals(new double[] {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, y, EXACT);
        // eps is added to the standard deviation, not the variance
        double[] ye = Reference64.meanVarianceNorm(new float[] {1, 2, 3, 4}, new long[] {4}, new int[] {0}, 0.5);
        assertEquals(-1.5 / (s + 0.5), ye[0], EXACT);
        // axes {0} on [2,2]: columns; {1}: rows; {-1} == {1}
        float[] x = {1, 10, 3, 30};
        assertArrayEquals(new double[] {-1, -1, 1, 1}, Reference64.meanVarianceNorm(x, new long[] {2, 2}, new int[] {0}, 0), EXACT);
        assertArrayEquals(new double[] {-1, 1, -1, 1}, Reference64.meanVarianceNorm(x, new long[] {2, 2}, new int[] {1}, 0), EXACT);
        assertArrayEquals(Reference64.meanVarianceNorm(x, new long[] {2, 2}, new int[] {1}),
                Reference64.meanVarianceNorm(x, new long[] {2, 2}, new int[] {-1}), 0.0);
        assertThrows(IllegalArgumentException.class,
                () -> Reference64.meanVarianceNorm(x, new long[] {2, 2}, new int[] {1, -1}, 0));
    }

    @Test
    void meanVarianceNormGeneralAxesMatchBruteForce() {
        // axes {0, 2} of a [2,3,4] tensor: groups indexed by axis 1, 8 elements each
        Random rnd = new Random(3);
        float[] x = randomFloats(rnd, 24, 1.0, 2.0);
        double[] y = Reference64.meanVarianceNorm(x, new long[] {2, 3, 4}, new int[] {2, 0}, 1e-9);
        for (int c = 0; c < 3; c++) {
            List<Integer> idx = new ArrayList<>();
            for (int a = 0; a < 2; a++) {
                for (int b = 0; b < 4; b++) {
                    idx.add(a * 12 + c * 4 + b);
                }
            }
            double mean = idx.stream().mapToDouble(i -> x[i]).sum() / 8;
            double var = idx.stream().mapToDouble(i -> (x[i] - mean) * (x[i] - mean)).sum() / 8;
            for (int i : idx) {
                assertEquals((x[i] - mean) / (Math.sqrt(var) + 1e-9), y[i], 1e-13, "y[" + i + "]");
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // ONNX conformance vectors
    // ------------------------------------------------------------------------------------------

    static List<String> onnxCases() {
        return TestData.caseNames(TestData.onnx());
    }

    @Test
    void allFiftyFourOnnxCasesArePresent() {
        assertEquals(54, onnxCases().size(), "cases in " + TestData.onnx());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("onnxCases")
    void matchesOnnxVector(String name) {
        Path dir = TestData.onnx().resolve(name);
        Map<String, Object> c = TestJson.parseObject(dir.resolve("case.json"));
        String op = TestJson.string(c.get("op_type"));
        int opVersion = TestJson.asInt(c.get("op_version"));
        Map<String, Object> attrs = TestJson.object(c.get("effective_attributes"));
        double rtol = TestJson.asDouble(TestJson.path(c, "tolerance", "rtol"));
        double atol = TestJson.asDouble(TestJson.path(c, "tolerance", "atol"));

        List<TestNpy.Float32> in = new ArrayList<>();
        for (Object input : TestJson.array(c.get("inputs"))) {
            Map<String, Object> i = TestJson.object(input);
            assertEquals(in.size(), TestJson.asInt(i.get("index")));
            in.add(TestNpy.readFloat32(dir.resolve(TestJson.string(i.get("file")))));
        }
        float[] x = in.get(0).data();
        long[] shape = in.get(0).shape();
        float eps = attrs.containsKey("epsilon") ? TestJson.asFloat(attrs.get("epsilon")) : 0f;

        Map<Integer, double[]> actual = new HashMap<>();
        switch (op) {
            case "LayerNormalization" -> {
                Reference64.Normalized r = Reference64.layerNorm(x, shape, TestJson.asInt(attrs.get("axis")), eps,
                        optional(in, 1), optional(in, 2));
                actual.put(0, r.y());
                actual.put(1, r.mean());
                actual.put(2, r.invStd());
            }
            case "RMSNormalization" -> actual.put(0,
                    Reference64.rmsNorm(x, shape, TestJson.asInt(attrs.get("axis")), eps, optional(in, 1)).y());
            case "GroupNormalization" -> {
                // opset 18: scale/bias per group; opset 21: per channel
                boolean perGroup = opVersion < 21;
                actual.put(0, Reference64.groupNorm(x, shape, TestJson.asInt(attrs.get("num_groups")), eps,
                        in.get(1).data(), in.get(2).data(), perGroup).y());
            }
            case "InstanceNormalization" -> actual.put(0,
                    Reference64.instanceNorm(x, shape, eps, in.get(1).data(), in.get(2).data()).y());
            case "BatchNormalization" -> {
                boolean training = attrs.containsKey("training_mode") && TestJson.asInt(attrs.get("training_mode")) == 1;
                if (training) {
                    Reference64.BatchNormTraining r = Reference64.batchNormTraining(x, shape, in.get(1).data(),
                            in.get(2).data(), in.get(3).data(), in.get(4).data(), eps,
                            TestJson.asFloat(attrs.get("momentum")), false);
                    actual.put(0, r.y());
                    actual.put(1, r.newRunningMean());
                    actual.put(2, r.newRunningVar());
                } else {
                    actual.put(0, Reference64.batchNormInference(x, shape, in.get(1).data(), in.get(2).data(),
                            in.get(3).data(), in.get(4).data(), eps));
                }
            }
            case "MeanVarianceNormalization" -> {
                int[] axes = attrs.containsKey("axes") ? TestJson.asIntArray(attrs.get("axes")) : Reference64.MVN_DEFAULT_AXES;
                actual.put(0, Reference64.meanVarianceNorm(x, shape, axes, Reference64.MVN_DEFAULT_EPS));
            }
            default -> fail(name + ": unexpected op_type " + op);
        }

        int checked = 0;
        for (Object output : TestJson.array(c.get("outputs"))) {
            Map<String, Object> o = TestJson.object(output);
            int index = TestJson.asInt(o.get("index"));
            double[] got = actual.get(index);
            if (got == null) {
                fail(name + ": Reference64 produced no output " + index + " (" + o.get("name") + ")");
            }
            TestNpy.Float32 expected = TestNpy.readFloat32(dir.resolve(TestJson.string(o.get("file"))));
            Tolerance.assertClose(name + " output " + index + " (" + o.get("name") + ")", got,
                    expected.toDouble(), atol, rtol);
            checked++;
        }
        assertTrue(checked >= 1);
    }

    // ------------------------------------------------------------------------------------------

    private static float[] optional(List<TestNpy.Float32> in, int i) {
        return i < in.size() ? in.get(i).data() : null;
    }

    static float[] randomFloats(Random rnd, int n, double mean, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (mean + std * rnd.nextGaussian());
        }
        return a;
    }
}
