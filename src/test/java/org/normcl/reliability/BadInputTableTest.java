package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.BatchNorm;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.MeanVarianceNorm;
import org.normcl.MomentumConvention;
import org.normcl.NormEngine;
import org.normcl.SavedStats;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.Shape;
import org.normcl.cli.Main;
import org.normcl.npy.Npy;
import org.normcl.testing.Backends;

/**
 * One test per row of the bad-input table in {@code docs/errors.md} that
 * {@code org.normcl.BadInputTest} does not already cover (the table names the test of every row).
 * Test names start with the row's id. Engine-level rows run on every backend of
 * {@link Backends#all()}; lifecycle rows on fresh engines (Java and each OpenCL device), since
 * they close them.
 */
class BadInputTableTest {
    private static final HostTensor X4 = zeros(2, 4, 3, 3);
    private static final HostTensor X2 = zeros(3, 5);

    private static HostTensor zeros(long... dims) {
        return HostTensor.zeros(Shape.of(dims));
    }

    /** Asserts that {@code call} throws {@code type} whose message contains every part. */
    private static <T extends Throwable> T fails(Class<T> type, String what, Executable call, String... parts) {
        T e = assertThrows(type, call, what);
        for (String p : parts) {
            assertTrue(String.valueOf(e.getMessage()).contains(p), () -> what + ": message '" + e.getMessage()
                    + "' lacks '" + p + "'");
        }
        return e;
    }

    /** Runs a check on every shared engine (Java, and each OpenCL device with both kernel families). */
    private static void onEveryBackend(Consumer<Backends.Named> check) {
        for (Backends.Named b : Backends.all()) {
            check.accept(b);
        }
    }

    /** Fresh engines (they get closed): Java and one per OpenCL device. */
    private static List<Function<Void, NormEngine>> freshEngines() {
        List<Function<Void, NormEngine>> l = new ArrayList<>();
        l.add(v -> NormEngine.create(EngineOptions.java()));
        for (DeviceInfo d : Backends.requireDevicesInCi()) {
            l.add(v -> NormEngine.create(EngineOptions.opencl(Integer.toString(d.index()))));
        }
        return l;
    }

    // ------------------------------------------------------------------ A: null arguments

    @Test
    void a1_nullSpecNamesSpecAndWhatToPass() {
        onEveryBackend(b -> {
            NormEngine e = b.engine();
            List<Executable> calls = List.of(() -> e.layerNorm(null, X2, null, null), () -> e.rmsNorm(null, X2, null),
                    () -> e.groupNorm(null, X4, null, null), () -> e.instanceNorm(null, X4, null, null),
                    () -> e.batchNorm(null, X4, null, null, null, null), () -> e.meanVarianceNorm(null, X4));
            for (Executable c : calls) {
                fails(IllegalArgumentException.class, b + ": null spec", c, "spec must not be null: expected a");
            }
        });
    }

    @Test
    void a2_nullXOnEveryOperator() {
        // BadInputTest "null X" covers layerNorm; the other operators share the check.
        onEveryBackend(b -> {
            NormEngine e = b.engine();
            List<Executable> calls = List.of(() -> e.rmsNorm(RmsNorm.defaults(), null, null),
                    () -> e.groupNorm(GroupNorm.of(1), null, null, null),
                    () -> e.instanceNorm(InstanceNorm.defaults(), null, null, null),
                    () -> e.batchNorm(BatchNorm.defaults().withTraining(true), null, null, null, null, null),
                    () -> e.meanVarianceNorm(MeanVarianceNorm.defaults(), null));
            for (Executable c : calls) {
                fails(IllegalArgumentException.class, b + ": null X", c, "X must not be null");
            }
        });
    }

    @Test
    void a3_optionalInputsMayBeNull() {
        onEveryBackend(b -> {
            NormEngine e = b.engine();
            assertDoesNotThrow(() -> e.layerNorm(X2, null, null).close(), b + " layer");
            assertDoesNotThrow(() -> e.rmsNorm(RmsNorm.defaults(), X2, null).close(), b + " rms");
            assertDoesNotThrow(() -> e.groupNorm(GroupNorm.of(2), X4, null, null).close(), b + " group");
            assertDoesNotThrow(() -> e.instanceNorm(InstanceNorm.defaults(), X4, null, null).close(), b + " instance");
            assertDoesNotThrow(() -> e.batchNorm(BatchNorm.defaults().withTraining(true), X4, null, null, null, null)
                    .close(), b + " batch training");
        });
    }

    @Test
    void a6_nullTensorsShapesAndOptionsNameTheParameterAndTheExpectedValue() {
        onEveryBackend(b -> {
            NormEngine e = b.engine();
            fails(IllegalArgumentException.class, b + " upload", () -> e.upload(null),
                    "host must not be null: expected a HostTensor");
            fails(IllegalArgumentException.class, b + " full", () -> e.full(null, 0f),
                    "shape must not be null: expected a Shape");
        });
        fails(IllegalArgumentException.class, "create", () -> NormEngine.create(null),
                "options must not be null: expected EngineOptions");
        fails(IllegalArgumentException.class, "HostTensor.of", () -> HostTensor.of(null, 2, 3),
                "data must not be null: expected an array of FLOAT32 values");
        fails(IllegalArgumentException.class, "HostTensor.of", () -> HostTensor.of(new float[1], (Shape) null),
                "shape must not be null: expected a Shape");
    }

    @Test
    void a7_nullSpecSettingsAreIllegalArgumentsNamingTheChoices() {
        fails(IllegalArgumentException.class, "affine", () -> GroupNorm.of(1).withAffine(null),
                "affine must not be null", "PER_CHANNEL or PER_GROUP");
        fails(IllegalArgumentException.class, "convention", () -> BatchNorm.defaults().withConvention(null),
                "convention must not be null", "ONNX or PYTORCH");
        fails(IllegalArgumentException.class, "backend", () -> EngineOptions.of(null), "backend must not be null",
                "AUTO, OPENCL or JAVA");
        fails(IllegalArgumentException.class, "axes", () -> MeanVarianceNorm.defaults().withAxes((int[]) null),
                "axes must name at least one dimension");
    }

    @Test
    void a8_nullDims() {
        fails(IllegalArgumentException.class, "Shape.of", () -> Shape.of((long[]) null),
                "dims must not be null: expected the dimensions");
    }

    // ------------------------------------------------------------------ B: rank and shape

    @Test
    void b1_rankZeroXOnRmsAndMvn() {
        HostTensor scalar = HostTensor.of(new float[1], new long[0]);
        onEveryBackend(b -> {
            fails(IllegalArgumentException.class, b + " rms", () -> b.engine().rmsNorm(RmsNorm.defaults(), scalar,
                    null), "X has shape []", "expected rank >= 1");
            fails(IllegalArgumentException.class, b + " mvn", () -> b.engine().meanVarianceNorm(
                    MeanVarianceNorm.defaults().withAxes(0), scalar), "X has shape []", "expected rank >= 1");
        });
    }

    @Test
    void b2_rankOneXOnInstanceAndBatchNorm() {
        onEveryBackend(b -> {
            fails(IllegalArgumentException.class, b + " instance", () -> b.engine().instanceNorm(
                    InstanceNorm.defaults(), zeros(6), null, null), "X has shape [6]", "expected rank >= 2 (N, C");
            fails(IllegalArgumentException.class, b + " batch", () -> b.engine().batchNorm(BatchNorm.defaults(),
                    zeros(6), null, null, zeros(6), zeros(6)), "X has shape [6]", "expected rank >= 2 (N, C");
        });
    }

    @Test
    void b5_instanceAndBatchScaleAndBiasShapes() {
        onEveryBackend(b -> {
            NormEngine e = b.engine();
            fails(IllegalArgumentException.class, b + " instance scale", () -> e.instanceNorm(InstanceNorm.defaults(),
                    X4, zeros(5), null), "scale has shape [5]", "expected [4] = [C]");
            fails(IllegalArgumentException.class, b + " batch scale", () -> e.batchNorm(BatchNorm.defaults(), X4,
                    zeros(2, 4), null, zeros(4), zeros(4)), "scale has shape [2, 4]", "expected [4] = [C]");
            fails(IllegalArgumentException.class, b + " batch bias", () -> e.batchNorm(BatchNorm.defaults(), X4, null,
                    zeros(3), zeros(4), zeros(4)), "bias has shape [3]", "expected [4] = [C]");
            // A prefix of ones is accepted (broadcastable): [1, 4] for [4].
            assertDoesNotThrow(() -> e.batchNorm(BatchNorm.defaults(), X4, zeros(1, 4), zeros(1, 1, 4), zeros(4),
                    zeros(4)).close());
        });
    }

    @Test
    void b6_runningVarShape() {
        onEveryBackend(b -> fails(IllegalArgumentException.class, b + " runningVar", () -> b.engine().batchNorm(
                BatchNorm.defaults(), X4, null, null, zeros(4), zeros(5)), "runningVar has shape [5]",
                "expected [4] = [C]"));
    }

    @Test
    void b8_negativeDimension() {
        fails(IllegalArgumentException.class, "Shape.of", () -> Shape.of(2, -1), "shape: dimension 1 is -1",
                "expected >= 0", "[2, -1]");
        fails(IllegalArgumentException.class, "HostTensor.of", () -> HostTensor.of(new float[0], 0, -3),
                "dimension 1 is -3");
    }

    @Test
    void b9_elementCountOverflow() {
        fails(IllegalArgumentException.class, "Shape.of", () -> Shape.of(1L << 40, 1L << 40),
                "has more than 2^63 elements");
        // Empty, but its other dimensions' product (the extent of a slice) would wrap.
        fails(IllegalArgumentException.class, "Shape.of with a zero", () -> Shape.of(0, 1L << 40, 1L << 40),
                "shape: [0, 1099511627776, 1099511627776] has more than 2^63 elements in its nonzero dimensions");
        assertEquals(0, Shape.of(0, 1L << 40, 1L << 20).size());
    }

    @Test
    void b9_deviceTensorWhoseBytesOverflow() {
        // 2^62 + 1 float32 values are 2^64 + 4 bytes: wrapped to 4, a buffer the kernels overran.
        long elements = (1L << 62) + 1;
        onEveryBackend(b -> fails(IllegalArgumentException.class, b + " full",
                () -> b.engine().full(Shape.of(elements), 1f), "4611686018427387905", b.name().equals("java")
                        ? "the Java backend holds at most 2147483639 elements"
                        : "(more than 2^63 bytes) exceeds CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
    }

    @Test
    void b10_moreElementsThanAJavaArrayHolds() {
        fails(IllegalArgumentException.class, "HostTensor.zeros", () -> HostTensor.zeros(Shape.of(3, 1L << 30)),
                "shape [3, 1073741824] has 3221225472 elements, more than a Java array holds; keep it on the device");
    }

    @Test
    void b12_mvnEmptyAxesAndDefaultAxesOnALowRank() {
        fails(IllegalArgumentException.class, "withAxes()", () -> MeanVarianceNorm.defaults().withAxes(),
                "axes must name at least one dimension");
        onEveryBackend(b -> fails(IllegalArgumentException.class, b + " default axes [0, 2, 3] on rank 2",
                () -> b.engine().meanVarianceNorm(MeanVarianceNorm.defaults(), X2), "axes = 2 is out of range for"
                        + " input of rank 2 [3, 5]", "expected a value in [-2, 1]"));
    }

    // ------------------------------------------------------------------ C: dtypes

    /**
     * Parameters are float32 or X's type, one type per call; dY has X's type; saved statistics
     * have the statistics type (float32, or float64 for float64 data).
     */
    @Test
    void c1_mismatchedDtypes() {
        HostTensor x16 = HostTensor.convert(new float[15], DType.FLOAT16, 3, 5);
        HostTensor w16 = HostTensor.convert(new float[5], DType.FLOAT16, 5);
        HostTensor wb16 = HostTensor.convert(new float[5], DType.BFLOAT16, 5);
        HostTensor w32 = HostTensor.of(new float[5], 5);
        for (Backends.Named b : Backends.all()) {
            NormEngine e = b.engine();
            fails(IllegalArgumentException.class, b + " scale", () -> e.layerNorm(X2, w16, null),
                    "scale has dtype FLOAT16: expected FLOAT32 or X's dtype FLOAT32");
            fails(IllegalArgumentException.class, b + " mixed parameters", () -> e.layerNorm(x16, w32, w16),
                    "bias has dtype FLOAT16 but scale has FLOAT32: expected one parameter dtype");
            fails(IllegalArgumentException.class, b + " bf16 scale on f16 data", () -> e.layerNorm(x16, wb16, null),
                    "scale has dtype BFLOAT16: expected FLOAT32 or X's dtype FLOAT16");
            fails(IllegalArgumentException.class, b + " dY", () -> e.layerNormBackward(LayerNorm.defaults(), X2, x16,
                    null, null), "dY has dtype FLOAT32: expected X's dtype FLOAT16");
            fails(IllegalArgumentException.class, b + " saved stats", () -> e.layerNormBackward(LayerNorm.defaults(),
                    x16, x16, null, new SavedStats(HostTensor.convert(new float[3], DType.FLOAT16, 3, 1),
                            HostTensor.of(new float[3], 3, 1))), "saved.mean has dtype FLOAT16: expected FLOAT32");
        }
    }

    // ------------------------------------------------------------------ D: epsilon and momentum

    @Test
    void d1_epsilonOnEverySpec() {
        List<Function<Double, Object>> setters = List.of(v -> LayerNorm.defaults().withEpsilon(v),
                v -> RmsNorm.defaults().withEpsilon(v), v -> GroupNorm.of(1).withEpsilon(v),
                v -> InstanceNorm.defaults().withEpsilon(v), v -> BatchNorm.defaults().withEpsilon(v),
                v -> MeanVarianceNorm.defaults().withEpsilon(v));
        // 0, negative, NaN, infinite, rounding to 0 in float32, overflowing float32.
        for (double bad : new double[] {0, -0.0, -1e-5, Double.NaN, Double.POSITIVE_INFINITY,
            Double.NEGATIVE_INFINITY, 1e-50, 1e39}) {
            for (Function<Double, Object> s : setters) {
                fails(IllegalArgumentException.class, "epsilon " + bad, () -> s.apply(bad), "epsilon = " + bad,
                        ": expected a finite value > 0");
            }
        }
        for (Function<Double, Object> s : setters) {
            assertDoesNotThrow(() -> s.apply(1e-12));
        }
    }

    @Test
    void d2_momentumOutsideZeroOne() {
        for (double bad : new double[] {-0.1, 1.5, Double.NaN, Double.POSITIVE_INFINITY}) {
            fails(IllegalArgumentException.class, "momentum " + bad, () -> BatchNorm.defaults()
                    .withConvention(MomentumConvention.PYTORCH).withMomentum(bad), "momentum = " + bad,
                    "expected a value in [0, 1]");
        }
    }

    // ------------------------------------------------------------------ E: groups

    @Test
    void e1_numGroupsBelowOne() {
        for (int bad : new int[] {0, -2}) {
            fails(IllegalArgumentException.class, "GroupNorm.of(" + bad + ")", () -> GroupNorm.of(bad),
                    "numGroups = " + bad, "expected a value >= 1 that divides C");
        }
    }

    // ------------------------------------------------------------------ F: axis

    @Test
    void f1_rmsAxisOutOfRange() {
        onEveryBackend(b -> {
            fails(IllegalArgumentException.class, b + " rms axis 2", () -> b.engine().rmsNorm(RmsNorm.defaults()
                    .withAxis(2), X2, null), "axis = 2 is out of range for input of rank 2 [3, 5]",
                    "expected a value in [-2, 1]");
            fails(IllegalArgumentException.class, b + " rms axis -3", () -> b.engine().rmsNorm(RmsNorm.defaults()
                    .withAxis(-3), X2, null), "axis = -3");
        });
    }

    // ------------------------------------------------------------------ G: closed engines and tensors

    @Test
    void g1_everyCallOnAClosedEngine() {
        for (Function<Void, NormEngine> make : freshEngines()) {
            NormEngine e = make.apply(null);
            String name = e.description();
            DeviceTensor kept = e.upload(new float[6], 2, 3);
            e.close();
            List<Executable> calls = List.of(() -> e.layerNorm(X2, null, null), () -> e.rmsNorm(RmsNorm.defaults(),
                    X2, null), () -> e.groupNorm(GroupNorm.of(2), X4, null, null),
                    () -> e.instanceNorm(InstanceNorm.defaults(), X4, null, null),
                    () -> e.batchNorm(BatchNorm.defaults().withTraining(true), X4, null, null, null, null),
                    () -> e.meanVarianceNorm(MeanVarianceNorm.defaults(), X4), () -> e.upload(X2),
                    () -> e.full(Shape.of(3), 1f), kept::toHost);
            for (Executable c : calls) {
                fails(IllegalStateException.class, name + ": closed engine", c, "this NormEngine is closed");
            }
            e.close(); // idempotent
        }
    }

    @Test
    void g2_aClosedTensorAsAnyInput() {
        for (Function<Void, NormEngine> make : freshEngines()) {
            try (NormEngine e = make.apply(null)) {
                DeviceTensor scale = e.upload(new float[5], 5);
                DeviceTensor mean = e.upload(new float[4], 4);
                DeviceTensor var = e.upload(new float[] {1, 1, 1, 1}, 4);
                DeviceTensor x = e.upload(new float[15], 3, 5);
                scale.close();
                mean.close();
                x.close();
                String name = e.description();
                fails(IllegalStateException.class, name + " X", () -> e.rmsNorm(RmsNorm.defaults(), x, null),
                        "X is a closed DeviceTensor[3, 5]");
                fails(IllegalStateException.class, name + " scale", () -> e.layerNorm(X2, scale, null),
                        "scale is a closed DeviceTensor[5]");
                fails(IllegalStateException.class, name + " runningMean", () -> e.batchNorm(BatchNorm.defaults(), X4,
                        null, null, mean, var), "runningMean is a closed DeviceTensor[4]");
                var.close();
            }
        }
    }

    @Test
    void g3_toHostOfAClosedTensor() {
        for (Function<Void, NormEngine> make : freshEngines()) {
            try (NormEngine e = make.apply(null)) {
                DeviceTensor t = e.upload(new float[6], 2, 3);
                t.close();
                t.close(); // idempotent
                fails(IllegalStateException.class, e.description(), t::toHost, "DeviceTensor[2, 3] is closed");
                try (DeviceTensor x = e.upload(new float[6], 2, 3)) {
                    NormResult r = e.layerNorm(x, null, null);
                    r.close(); // closes its device tensors
                    fails(IllegalStateException.class, e.description() + " result Y", () -> r.y().toHost(),
                            "DeviceTensor[2, 3] is closed");
                }
            }
        }
    }

    @Test
    void g5_aTensorOfAnotherEngineAsAnyInputAcrossBackends() {
        List<NormEngine> engines = new ArrayList<>();
        for (Function<Void, NormEngine> make : freshEngines()) {
            engines.add(make.apply(null));
        }
        engines.add(NormEngine.create(EngineOptions.java()));
        try {
            for (NormEngine owner : engines) {
                try (DeviceTensor scale = owner.upload(new float[5], 5); DeviceTensor x = owner.upload(new float[15],
                        3, 5)) {
                    for (NormEngine other : engines) {
                        if (other == owner) {
                            continue;
                        }
                        String what = owner.description() + " -> " + other.description();
                        fails(IllegalArgumentException.class, what + " scale", () -> other.layerNorm(X2, scale, null),
                                "scale is a DeviceTensor of another engine", "upload it to this engine first");
                        fails(IllegalArgumentException.class, what + " X", () -> other.rmsNorm(RmsNorm.defaults(), x,
                                null), "X is a DeviceTensor of another engine");
                    }
                }
            }
        } finally {
            engines.forEach(NormEngine::close);
        }
    }

    // ------------------------------------------------------------------ H: size limits

    /**
     * A device tensor larger than the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE gets an
     * IllegalArgumentException before any allocation; host tensors that large are processed in
     * chunks instead (ChunkedProcessingTest; see docs/errors.md, row H1).
     */
    @Test
    void h1_aTensorLargerThanTheDevicesMaxAllocation() {
        for (Backends.Named b : Backends.openCl()) {
            NormEngine e = b.engine();
            DeviceInfo d = e.device().orElseThrow();
            long elements = d.maxAllocBytes() / 4 + 1;
            fails(IllegalArgumentException.class, b + " full", () -> e.full(Shape.of(elements), 0f),
                    "a tensor of " + elements + " FLOAT32 elements (" + elements * 4 + " bytes) exceeds"
                            + " CL_DEVICE_MAX_MEM_ALLOC_SIZE = " + d.maxAllocBytes() + " bytes of " + d.name());
        }
    }

    @Test
    void h2_aTensorLargerThanTheJavaBackendHolds() {
        try (NormEngine e = NormEngine.create(EngineOptions.java())) {
            long elements = 3L << 30;
            fails(IllegalArgumentException.class, "java full", () -> e.full(Shape.of(elements), 0f),
                    "the Java backend holds at most 2147483639 elements per tensor; asked for " + elements);
        }
    }

    // ------------------------------------------------------------------ I: engine options

    @Test
    void i2_negativeThreadCount() {
        fails(IllegalArgumentException.class, "withThreads(-1)", () -> EngineOptions.java().withThreads(-1),
                "threads = -1: expected 0 (all processors) to 32767");
        // Above ForkJoinPool's limit: was an IllegalArgumentException without a message, thrown
        // when the (possibly lazily created) Java backend started its pool.
        fails(IllegalArgumentException.class, "withThreads(40000)", () -> EngineOptions.java().withThreads(40000),
                "threads = 40000: expected 0 (all processors) to 32767");
    }

    // ------------------------------------------------------------------ CLI: exit code 2, no output file

    /**
     * The CLI rows that {@code org.normcl.cli.ApplyErrorsTest} does not cover: MVN axes not
     * consecutive, named twice, out of range. Each exits 2, names the option, and writes no file.
     */
    @Test
    void cli_mvnAxesExitTwoAndWriteNothing(@TempDir Path dir) throws IOException {
        Npy.write(dir.resolve("x.npy"), new float[2 * 4 * 3 * 3], new long[] {2, 4, 3, 3});
        List<String> before = list(dir);
        String[][] cases = {
            {"mvn --input x.npy --output y.npy --axes 1,3", "--axes", "consecutive"},
            {"mvn --input x.npy --output y.npy --axes 1,-3", "--axes", "twice"},
            {"mvn --input x.npy --output y.npy --axes 0,4", "--axes", "out of range"}};
        for (String[] c : cases) {
            String[] args = Stream.concat(Stream.of("apply"), Stream.of(c[0].split(" ")).map(a -> a.endsWith(".npy")
                    ? dir.resolve(a).toString() : a)).toArray(String[]::new);
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
            assertEquals(2, code, () -> c[0] + ": exit code; stderr: " + err);
            for (int i = 1; i < c.length; i++) {
                String part = c[i];
                assertTrue(err.toString().contains(part), () -> c[0] + ": stderr '" + err + "' lacks '" + part + "'");
            }
            assertEquals(before, list(dir), c[0] + ": files in the output directory");
        }
    }

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
