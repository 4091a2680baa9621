package org.normcl.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Cross-checks the two independent float64 oracles: the Java {@link Reference64} against the
 * numpy references stored in {@code test-data/golden} by {@code scripts/gen_golden.py}.
 *
 * <p>Both compute textbook two-pass statistics in float64 from the same float32 inputs, so they
 * differ only by rounding (numpy uses pairwise summation, Reference64 a plain loop, and the
 * operations are ordered differently). Every output is compared with
 * {@code rtol = 1e-12} and {@code atol = 1e-12 * max|expected|} (the largest finite magnitude of that
 * output), which is ~4 decimal digits tighter than any float32 tolerance and far looser than the
 * observed ~1e-15 differences; NaN / Inf must appear at exactly the same places.
 */
class GoldenReferenceTest {

    static final double RTOL = 1e-12;
    static final double ATOL_REL_TO_MAX = 1e-12;

    static List<String> goldenCases() {
        return TestData.caseNames(TestData.golden());
    }

    @Test
    void goldenSetIsComplete() {
        List<String> names = goldenCases();
        assertEquals(38, names.size(), "golden cases in " + TestData.golden()
                + " (run `python3 scripts/gen_golden.py`, and update this count when adding cases)");
        Set<String> ops = new TreeSet<>();
        for (String n : names) {
            ops.add(TestJson.string(TestJson.parseObject(TestData.golden().resolve(n).resolve("case.json")).get("op")));
        }
        assertEquals(Set.of("layer-norm", "rms-norm", "group-norm", "instance-norm", "batch-norm", "mvn"), ops);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenCases")
    void reference64MatchesNumpy(String name) {
        Path dir = TestData.golden().resolve(name);
        Map<String, Object> c = TestJson.parseObject(dir.resolve("case.json"));
        String op = TestJson.string(c.get("op"));
        Map<String, Object> attrs = TestJson.object(c.get("attributes"));
        Map<String, Object> inputs = TestJson.object(c.get("inputs"));
        Map<String, Object> outputs = TestJson.object(c.get("outputs"));
        Map<String, Object> shapes = TestJson.object(c.get("shapes"));

        TestNpy.Float32 xIn = TestNpy.readFloat32(dir.resolve(TestJson.string(inputs.get("X"))));
        assertArrayEquals(TestJson.asLongArray(shapes.get("X")), xIn.shape(), name + ": X shape vs case.json");
        float[] x = xIn.data();
        long[] shape = xIn.shape();
        float[] scale = optionalInput(dir, inputs, "scale");
        float[] bias = optionalInput(dir, inputs, "bias");

        Map<String, double[]> actual = new HashMap<>();
        switch (op) {
            case "layer-norm" -> {
                Reference64.Normalized r = Reference64.layerNorm(x, shape, TestJson.asInt(attrs.get("axis")),
                        TestJson.asFloat(attrs.get("epsilon")), scale, bias);
                actual.put("Y", r.y());
                actual.put("Mean", r.mean());
                actual.put("InvStdDev", r.invStd());
            }
            case "rms-norm" -> {
                Reference64.RmsNormalized r = Reference64.rmsNorm(x, shape, TestJson.asInt(attrs.get("axis")),
                        TestJson.asFloat(attrs.get("epsilon")), scale);
                actual.put("Y", r.y());
                actual.put("InvRms", r.invRms());
            }
            case "group-norm" -> {
                Reference64.Normalized r = Reference64.groupNorm(x, shape, TestJson.asInt(attrs.get("groups")),
                        TestJson.asFloat(attrs.get("epsilon")), scale, bias,
                        TestJson.bool(attrs.get("per_group_affine")));
                actual.put("Y", r.y());
                actual.put("Mean", r.mean());
                actual.put("InvStdDev", r.invStd());
            }
            case "instance-norm" -> {
                Reference64.Normalized r = Reference64.instanceNorm(x, shape, TestJson.asFloat(attrs.get("epsilon")),
                        scale, bias);
                actual.put("Y", r.y());
                actual.put("Mean", r.mean());
                actual.put("InvStdDev", r.invStd());
            }
            case "batch-norm" -> {
                float[] mean = optionalInput(dir, inputs, "mean");
                float[] var = optionalInput(dir, inputs, "var");
                float eps = TestJson.asFloat(attrs.get("epsilon"));
                if (TestJson.bool(attrs.get("training"))) {
                    String convention = TestJson.string(attrs.get("convention"));
                    assertTrue(convention.equals("onnx") || convention.equals("pytorch"), convention);
                    Reference64.BatchNormTraining r = Reference64.batchNormTraining(x, shape, scale, bias, mean, var,
                            eps, TestJson.asFloat(attrs.get("momentum")), convention.equals("pytorch"));
                    actual.put("Y", r.y());
                    actual.put("Mean", r.mean());
                    actual.put("InvStdDev", r.invStd());
                    actual.put("running_mean", r.newRunningMean());
                    actual.put("running_var", r.newRunningVar());
                    if (!outputs.containsKey("Y")) {
                        checkYAgainstStoredStats(name, dir, outputs, x, shape, scale, bias, r.y());
                    }
                } else {
                    actual.put("Y", Reference64.batchNormInference(x, shape, scale, bias, mean, var, eps));
                }
            }
            case "mvn" -> actual.put("Y", Reference64.meanVarianceNorm(x, shape,
                    TestJson.asIntArray(attrs.get("axes")), TestJson.asDouble(attrs.get("epsilon"))));
            default -> fail(name + ": unknown op " + op);
        }

        assertFalse(outputs.isEmpty(), name + ": no outputs");
        for (Map.Entry<String, Object> e : outputs.entrySet()) {
            double[] got = actual.get(e.getKey());
            if (got == null) {
                fail(name + ": Reference64 has no output " + e.getKey());
            }
            TestNpy.Float64 expected = TestNpy.readFloat64(dir.resolve(TestJson.string(e.getValue())));
            assertArrayEquals(TestJson.asLongArray(shapes.get(e.getKey())), expected.shape(),
                    name + ": " + e.getKey() + " shape vs case.json");
            double atol = ATOL_REL_TO_MAX * Tolerance.maxAbsFinite(expected.data());
            Tolerance.assertClose(name + " " + e.getKey(), got, expected.data(), atol, RTOL);
        }
    }

    /**
     * For a batch-norm training case stored without Y (too large): Y must equal
     * {@code (x - Mean[c]) * InvStdDev[c] * scale[c] + bias[c]} with numpy's stored statistics.
     */
    private static void checkYAgainstStoredStats(String name, Path dir, Map<String, Object> outputs, float[] x,
                                                 long[] shape, float[] scale, float[] bias, double[] y) {
        double[] mean = TestNpy.readFloat64(dir.resolve(TestJson.string(outputs.get("Mean")))).data();
        double[] invStd = TestNpy.readFloat64(dir.resolve(TestJson.string(outputs.get("InvStdDev")))).data();
        int c = (int) shape[1];
        long spatial = 1;
        for (int d = 2; d < shape.length; d++) {
            spatial *= shape[d];
        }
        double[] expected = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int ch = (int) ((i / spatial) % c);
            double v = ((double) x[i] - mean[ch]) * invStd[ch];
            expected[i] = v * (scale == null ? 1.0 : scale[ch]) + (bias == null ? 0.0 : bias[ch]);
        }
        Tolerance.assertClose(name + " Y (from the stored Mean/InvStdDev)", y, expected,
                ATOL_REL_TO_MAX * Tolerance.maxAbsFinite(expected), RTOL);
    }

    private static float[] optionalInput(Path dir, Map<String, Object> inputs, String role) {
        Object file = inputs.get(role);
        if (file == null) {
            return null;
        }
        Path p = dir.resolve(TestJson.string(file));
        assertTrue(Files.isRegularFile(p), p + " missing");
        return TestNpy.readFloat32(p).data();
    }
}
