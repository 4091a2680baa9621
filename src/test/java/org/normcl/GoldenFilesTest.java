package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64;
import org.normcl.reference.TestData;
import org.normcl.reference.TestJson;
import org.normcl.reference.TestNpy;
import org.normcl.testing.Backends;
import org.normcl.testing.OpCall;
import org.normcl.testing.Tolerances;

/**
 * The golden cases of test-data/golden (inputs and float64 expected outputs written by numpy, see
 * scripts/gen_golden.py) on every backend. Y is checked with the per-element bound of
 * {@link Tolerances}, using the statistics stored with the case; the saved and running statistics
 * with their own bounds.
 */
class GoldenFilesTest {

    static Stream<Arguments> cases() {
        List<Arguments> args = new ArrayList<>();
        for (Backends.Named b : Backends.all()) {
            for (String c : TestData.caseNames(TestData.golden())) {
                args.add(Arguments.of(b, c));
            }
        }
        return args.stream();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("cases")
    void matches(Backends.Named backend, String name) {
        Tolerances.onBackend(backend.name());
        Path dir = TestData.golden().resolve(name);
        Map<String, Object> json = TestJson.parseObject(dir.resolve("case.json"));
        String op = TestJson.string(json.get("op"));
        Map<String, Object> a = TestJson.object(json.get("attributes"));
        Map<String, HostTensor> inputs = new HashMap<>();
        Map<String, float[]> raw = new HashMap<>();
        for (Map.Entry<String, Object> e : TestJson.object(json.get("inputs")).entrySet()) {
            TestNpy.Float32 t = TestNpy.readFloat32(dir.resolve(TestJson.string(e.getValue())));
            inputs.put(e.getKey(), HostTensor.of(t.data(), t.shape()));
            raw.put(e.getKey(), t.data());
        }
        Map<String, double[]> expected = new HashMap<>();
        for (Map.Entry<String, Object> e : TestJson.object(json.get("outputs")).entrySet()) {
            expected.put(e.getKey(), TestNpy.readAsFloat64(dir.resolve(TestJson.string(e.getValue()))).data());
        }
        OpCall call = new OpCall(op, a.containsKey("axis") ? TestJson.asInt(a.get("axis")) : -1,
                TestJson.asFloat(a.get("epsilon")), a.containsKey("groups") ? TestJson.asInt(a.get("groups")) : 0,
                a.containsKey("per_group_affine") && TestJson.bool(a.get("per_group_affine")),
                a.containsKey("training") && TestJson.bool(a.get("training")),
                a.containsKey("momentum") ? TestJson.asFloat(a.get("momentum")) : Double.NaN,
                "pytorch".equals(a.get("convention")), a.containsKey("axes") ? TestJson.asIntArray(a.get("axes")) : null,
                inputs);
        float[] x = raw.get("X");
        long[] dims = inputs.get("X").shape().dims();
        try (NormResult r = call.run(backend.engine())) {
            assertEquals(inputs.get("X").shape(), r.y().shape(), "Y shape");
            Stats st = stats(op, call, dims, x, raw, expected);
            if (expected.containsKey("Y")) {
                double[] y = expected.get("Y");
                double[] bound = new double[y.length];
                float[] w = raw.get("scale");
                float[] b = raw.get("bias");
                for (int i = 0; i < y.length; i++) {
                    int s = st.slice[i];
                    int af = st.affine[i];
                    double sigma = 1 / st.inv[s];
                    double xhat = st.rms ? x[i] * st.inv[s] : (x[i] - st.mean[s]) * st.inv[s];
                    bound[i] = Tolerances.element(xhat, st.rms ? 0 : Math.abs(st.mean[s]) / sigma,
                            w == null ? 1 : w[af], b == null ? 0 : b[af], y[i]);
                }
                Tolerances.assertWithin(name + " Y", r.y().toHost().data(), y, bound);
            }
            if (expected.containsKey("Mean")) {
                double[] m = expected.get("Mean");
                double[] inv = expected.get("InvStdDev");
                double[] bound = new double[m.length];
                for (int i = 0; i < m.length; i++) {
                    bound[i] = Tolerances.mean(m[i], 1 / inv[i]);
                }
                assertNotNull(r.mean(), "Mean");
                Tolerances.assertWithin(name + " Mean", r.mean().toHost().data(), m, bound);
            }
            String invName = expected.containsKey("InvRms") ? "InvRms" : "InvStdDev";
            if (expected.containsKey(invName)) {
                double[] inv = expected.get(invName);
                double[] bound = new double[inv.length];
                for (int i = 0; i < inv.length; i++) {
                    bound[i] = Tolerances.invStd(inv[i]);
                }
                Tolerances.assertWithin(name + " " + invName, r.invStdDev().toHost().data(), inv, bound);
            }
            for (String k : new String[] {"running_mean", "running_var"}) {
                if (expected.containsKey(k)) {
                    double[] e = expected.get(k);
                    double[] bound = new double[e.length];
                    double[] inv = expected.get("InvStdDev");
                    double[] m = expected.get("Mean");
                    for (int i = 0; i < e.length; i++) {
                        double var = 1 / (inv[i] * inv[i]);
                        bound[i] = k.equals("running_mean") ? Tolerances.mean(m[i], Math.sqrt(var)) + 4 * Tolerances.U
                                * Math.abs(e[i]) : 64 * Tolerances.U * (Math.abs(e[i]) + var);
                    }
                    Tensor t = k.equals("running_mean") ? r.runningMean() : r.runningVar();
                    assertNotNull(t, k);
                    Tolerances.assertWithin(name + " " + k, t.toHost().data(), e, bound);
                }
            }
        }
    }

    /** Per-element slice and affine indices, and per-slice statistics from the stored outputs. */
    private record Stats(int[] slice, int[] affine, double[] mean, double[] inv, boolean rms) {
    }

    private static Stats stats(String op, OpCall call, long[] dims, float[] x, Map<String, float[]> raw,
            Map<String, double[]> expected) {
        int n = x.length;
        int[] slice = new int[n];
        int[] affine = new int[n];
        Shape s = Shape.of(dims);
        switch (op) {
            case "layer-norm":
            case "rms-norm": {
                int cols = (int) s.product(s.normalizeAxis(call.axis(), "axis"), s.rank());
                for (int i = 0; i < n; i++) {
                    slice[i] = i / cols;
                    affine[i] = i % cols;
                }
                boolean rms = op.equals("rms-norm");
                return new Stats(slice, affine, rms ? null : expected.get("Mean"),
                        expected.get(rms ? "InvRms" : "InvStdDev"), rms);
            }
            case "group-norm":
            case "instance-norm": {
                int c = (int) dims[1];
                int g = op.equals("group-norm") ? call.groups() : c;
                int spatial = (int) s.product(2, s.rank());
                int cols = c / g * spatial;
                for (int i = 0; i < n; i++) {
                    slice[i] = i / cols;
                    affine[i] = call.perGroupAffine() ? slice[i] % g : (i / spatial) % c;
                }
                return new Stats(slice, affine, expected.get("Mean"), expected.get("InvStdDev"), false);
            }
            case "batch-norm": {
                int c = (int) dims[1];
                int spatial = (int) s.product(2, s.rank());
                for (int i = 0; i < n; i++) {
                    slice[i] = (i / spatial) % c;
                    affine[i] = slice[i];
                }
                if (call.training()) {
                    return new Stats(slice, affine, expected.get("Mean"), expected.get("InvStdDev"), false);
                }
                double[] mean = new double[c];
                double[] inv = new double[c];
                for (int ch = 0; ch < c; ch++) {
                    mean[ch] = raw.get("mean")[ch];
                    inv[ch] = 1 / Math.sqrt(raw.get("var")[ch] + call.epsilon());
                }
                return new Stats(slice, affine, mean, inv, false);
            }
            case "mvn": {
                Reference64.Mvn ref = Reference64.meanVarianceNormDetailed(x, dims,
                        call.axes() == null ? Reference64.MVN_DEFAULT_AXES : call.axes(), call.epsilon());
                double[] inv = new double[n];
                for (int i = 0; i < n; i++) {
                    slice[i] = i;
                    inv[i] = 1 / (ref.elementStd()[i] + call.epsilon());
                }
                return new Stats(slice, affine, ref.elementMean(), inv, false);
            }
            default:
                throw new IllegalArgumentException(op);
        }
    }

    static boolean exists(Path p) {
        return Files.exists(p);
    }
}
