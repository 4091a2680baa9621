package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.testing.Backends;

/**
 * Bad arguments get an exception naming the parameter and what was expected, on every backend,
 * before any device work.
 */
class BadInputTest {
    private static final HostTensor X4 = HostTensor.zeros(Shape.of(2, 4, 3, 3));
    private static final HostTensor X2 = HostTensor.zeros(Shape.of(3, 5));

    private static HostTensor t(long... dims) {
        return HostTensor.zeros(Shape.of(dims));
    }

    record Bad(String name, Consumer<NormEngine> call, String... messageParts) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        List<Bad> bad = List.of(
                new Bad("null X", e -> e.layerNorm(null, null, null), "X must not be null"),
                new Bad("layer scale shape", e -> e.layerNorm(X2, t(4), null), "scale", "[4]", "[5]"),
                new Bad("layer bias shape", e -> e.layerNorm(X2, null, t(5, 3)), "bias", "[5, 3]", "[5]"),
                new Bad("layer axis out of range", e -> e.layerNorm(LayerNorm.defaults().withAxis(2), X2, null, null),
                        "axis = 2", "[-2, 1]"),
                new Bad("layer axis -3", e -> e.layerNorm(LayerNorm.defaults().withAxis(-3), X2, null, null),
                        "axis = -3"),
                new Bad("rank 0 X", e -> e.layerNorm(HostTensor.of(new float[1], new long[0]), null, null),
                        "X has shape []", "rank >= 1"),
                new Bad("rms scale shape", e -> e.rmsNorm(RmsNorm.defaults().withAxis(0), X2, t(5)), "scale",
                        "[3, 5]"),
                new Bad("groups do not divide C", e -> e.groupNorm(GroupNorm.of(3), X4, null, null), "numGroups = 3",
                        "C = 4", "divide"),
                new Bad("group scale shape", e -> e.groupNorm(GroupNorm.of(2), X4, t(2), null), "scale", "[2]",
                        "[4]"),
                new Bad("per-group scale shape", e -> e.groupNorm(GroupNorm.of(2).withAffine(GroupNorm.Affine.PER_GROUP),
                        X4, t(4), null), "scale", "[4]", "[2]", "[G]"),
                new Bad("group rank 1", e -> e.groupNorm(GroupNorm.of(1), t(6), null, null), "rank >= 2"),
                new Bad("instance bias shape", e -> e.instanceNorm(InstanceNorm.defaults(), X4, null, t(3)), "bias",
                        "[3]", "[4]"),
                new Bad("batch inference without running stats",
                        e -> e.batchNorm(BatchNorm.defaults(), X4, null, null, null, null), "runningMean",
                        "inference"),
                new Bad("batch mean without var",
                        e -> e.batchNorm(BatchNorm.defaults().withTraining(true), X4, null, null, t(4), null),
                        "runningVar", "both"),
                new Bad("batch running mean shape",
                        e -> e.batchNorm(BatchNorm.defaults(), X4, null, null, t(3), t(4)), "runningMean", "[3]",
                        "[4]"),
                new Bad("batch training one value per channel",
                        e -> e.batchNorm(BatchNorm.defaults().withTraining(true), t(1, 3), null, null, null, null),
                        "more than 1 value per channel", "[1, 3]"),
                new Bad("batch training one value per channel, spatial",
                        e -> e.batchNorm(BatchNorm.defaults().withTraining(true), t(1, 3, 1, 1), null, null, null,
                                null), "more than 1 value per channel"),
                new Bad("mvn non-consecutive kept axes",
                        e -> e.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(1, 3), X4), "consecutive"),
                new Bad("mvn axis twice", e -> e.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(1, -3), X4),
                        "twice"),
                new Bad("mvn axis out of range", e -> e.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(4), X4),
                        "axes = 4"));
        List<Arguments> args = new ArrayList<>();
        for (Backends.Named b : Backends.all()) {
            for (Bad c : bad) {
                args.add(Arguments.of(b, c));
            }
        }
        return args.stream();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("cases")
    void rejected(Backends.Named backend, Bad c) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.call().accept(backend.engine()));
        for (String part : c.messageParts()) {
            assertTrue(e.getMessage().contains(part), () -> "message '" + e.getMessage() + "' lacks '" + part + "'");
        }
    }

    @Test
    void specValuesAreChecked() {
        for (double eps : new double[] {0, -1, Double.NaN, Double.POSITIVE_INFINITY, 1e-50}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LayerNorm.defaults().withEpsilon(eps));
            assertTrue(e.getMessage().startsWith("epsilon = "), e.getMessage());
            assertTrue(e.getMessage().contains("> 0"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> BatchNorm.defaults().withMomentum(1.5));
        assertThrows(IllegalArgumentException.class, () -> BatchNorm.defaults().withMomentum(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> GroupNorm.of(0));
        assertThrows(IllegalArgumentException.class, () -> MeanVarianceNorm.defaults().withAxes());
        assertThrows(IllegalArgumentException.class, () -> Shape.of(2, -1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HostTensor.of(new float[5], 2, 3));
        assertTrue(e.getMessage().contains("5") && e.getMessage().contains("[2, 3]"), e.getMessage());
    }

    /** Asserts an IllegalArgumentException whose message is exactly {@code message}. */
    private static void rejectedWith(String message, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, message);
        assertEquals(message, e.getMessage());
    }

    @Test
    void hostTensorFactoriesNameANullArgument() {
        String values32 = "values must not be null: expected an array of float32 values";
        String dtype = "dtype must not be null: expected FLOAT32, FLOAT16, BFLOAT16 or FLOAT64";
        String shape = "shape must not be null: expected a Shape";
        String dims = "dims must not be null: expected the dimensions, outermost first";
        rejectedWith(values32, () -> HostTensor.convert(null, DType.FLOAT16, 2));
        rejectedWith(dtype, () -> HostTensor.convert(new float[2], null, 2));
        rejectedWith(dims, () -> HostTensor.convert(new float[2], DType.FLOAT16, (long[]) null));
        rejectedWith("values must not be null: expected an array of float64 values",
                () -> HostTensor.fromDoubles(null, DType.FLOAT32, Shape.of(2)));
        rejectedWith(dtype, () -> HostTensor.fromDoubles(new double[2], null, Shape.of(2)));
        for (DType t : DType.values()) {
            rejectedWith(shape, () -> HostTensor.fromDoubles(new double[2], t, null));
            rejectedWith(shape, () -> HostTensor.zeros(t, null));
        }
        rejectedWith(shape, () -> HostTensor.zeros(null));
        rejectedWith(dtype, () -> HostTensor.zeros(null, Shape.of(2)));
        rejectedWith("data must not be null: expected an array of FLOAT64 values",
                () -> HostTensor.ofDoubles(null, 2));
        rejectedWith(shape, () -> HostTensor.of(new float[2], (Shape) null));
        // Given arguments still work, with the type and values asked for.
        assertEquals(DType.BFLOAT16, HostTensor.zeros(DType.BFLOAT16, Shape.of(2, 3)).dtype());
        assertEquals(6, HostTensor.zeros(Shape.of(2, 3)).data().length);
        assertEquals(0.5, HostTensor.fromDoubles(new double[] {0.5}, DType.FLOAT16, Shape.of(1)).toDoubles()[0]);
    }

    @Test
    void closedEngineAndTensorsAreRejected() {
        NormEngine e = NormEngine.create(EngineOptions.java());
        DeviceTensor d = e.upload(new float[] {1, 2, 3}, 1, 3);
        d.close();
        IllegalStateException closedTensor = assertThrows(IllegalStateException.class,
                () -> e.layerNorm(d, null, null));
        assertTrue(closedTensor.getMessage().contains("closed"), closedTensor.getMessage());
        e.close();
        IllegalStateException closedEngine = assertThrows(IllegalStateException.class,
                () -> e.layerNorm(X2, null, null));
        assertTrue(closedEngine.getMessage().contains("closed"), closedEngine.getMessage());
    }

    @Test
    void tensorOfAnotherEngineIsRejected() {
        try (NormEngine a = NormEngine.create(EngineOptions.java());
                NormEngine b = NormEngine.create(EngineOptions.java());
                DeviceTensor x = a.upload(new float[6], 2, 3)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.layerNorm(x, null, null));
            assertTrue(e.getMessage().contains("another engine"), e.getMessage());
        }
    }
}
