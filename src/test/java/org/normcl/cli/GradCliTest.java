package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.npy.Npy;
import org.normcl.reference.Reference64Backward;
import org.normcl.reference.TestNpy;
import org.normcl.testing.GradBounds;
import org.normcl.testing.Tolerances;

/**
 * {@code normcl grad}: dX, dScale and dBias from .npy files against the float64 analytic
 * gradients (checked against finite differences in Reference64BackwardTest), on the Java and the
 * OpenCL backend, with and without saved statistics; and its bad-input contract (exit 2, the
 * option named, no output file).
 */
class GradCliTest {
    @TempDir
    Path dir;

    record Case(String name, String op, long[] shape, String[] extra, boolean withBias) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        List<Case> cases = List.of(
                new Case("layer-norm 3x17x5 axis 1", "layer-norm", new long[] {3, 17, 5}, new String[] {"--axis", "1"},
                        true),
                new Case("layer-norm 2x70001", "layer-norm", new long[] {2, 70001}, new String[0], true),
                new Case("rms-norm 6x33", "rms-norm", new long[] {6, 33}, new String[0], false),
                new Case("group-norm 2x6x7x3 G3", "group-norm", new long[] {2, 6, 7, 3}, new String[] {"--groups", "3"},
                        true),
                new Case("instance-norm 3x4x11", "instance-norm", new long[] {3, 4, 11}, new String[0], true),
                new Case("batch-norm training 5x3x6x7", "batch-norm", new long[] {5, 3, 6, 7},
                        new String[] {"--training"}, true));
        List<Arguments> args = new ArrayList<>();
        for (String backend : new String[] {"java", "opencl"}) {
            for (Case c : cases) {
                for (boolean saved : new boolean[] {false, true}) {
                    args.add(Arguments.of(backend, c, saved));
                }
            }
        }
        return args.stream();
    }

    @ParameterizedTest(name = "{0}: {1}, saved stats {2}")
    @MethodSource("cases")
    void matchesFloat64Gradients(String backend, Case c, boolean saved) throws Exception {
        CliTestSupport.requireBackend(backend);
        int n = CliTestSupport.size(c.shape());
        float[] x = CliTestSupport.gaussian(c.name().hashCode(), n, 1.5, 2);
        float[] dy = CliTestSupport.gaussian(c.name().hashCode() + 1, n, 0, 1);
        Reference64Backward.Sliced op;
        long[] affine;
        switch (c.op()) {
            case "layer-norm":
            case "rms-norm": {
                int axis = c.extra().length > 0 ? Integer.parseInt(c.extra()[1]) : -1;
                op = Reference64Backward.layer(c.shape(), axis, 1e-5f, c.op().equals("rms-norm"));
                int a = axis < 0 ? axis + c.shape().length : axis;
                affine = java.util.Arrays.copyOfRange(c.shape(), a, c.shape().length);
                break;
            }
            case "group-norm":
                op = Reference64Backward.group(c.shape(), 3, false, 1e-5f);
                affine = new long[] {c.shape()[1]};
                break;
            case "instance-norm":
                op = Reference64Backward.instance(c.shape(), 1e-5f);
                affine = new long[] {c.shape()[1]};
                break;
            default:
                op = Reference64Backward.batch(c.shape(), 1e-5f);
                affine = new long[] {c.shape()[1]};
        }
        float[] w = CliTestSupport.gaussian(c.name().hashCode() + 2, CliTestSupport.size(affine), 1, 0.4);
        TestNpy.writeFloat32(dir.resolve("x.npy"), c.shape(), x);
        TestNpy.writeFloat32(dir.resolve("dy.npy"), c.shape(), dy);
        TestNpy.writeFloat32(dir.resolve("w.npy"), affine, w);
        List<String> args = new ArrayList<>(List.of("grad", c.op(), "--backend", backend, "--input",
                dir.resolve("x.npy").toString(), "--scale", dir.resolve("w.npy").toString(), "--grad-output",
                dir.resolve("dy.npy").toString(), "--output-grad-input", dir.resolve("dx.npy").toString(),
                "--output-grad-scale", dir.resolve("dw.npy").toString()));
        args.addAll(List.of(c.extra()));
        if (c.withBias()) {
            args.addAll(List.of("--output-grad-bias", dir.resolve("db.npy").toString()));
        }
        if (saved) {
            List<String> fwd = new ArrayList<>(List.of("apply", c.op(), "--backend", backend, "--input",
                    dir.resolve("x.npy").toString(), "--scale", dir.resolve("w.npy").toString(), "--output",
                    dir.resolve("y.npy").toString(), "--save-inv-std", dir.resolve("inv.npy").toString()));
            fwd.addAll(List.of(c.extra()));
            args.addAll(List.of("--saved-inv-std", dir.resolve("inv.npy").toString()));
            if (!c.op().equals("rms-norm")) {
                fwd.addAll(List.of("--save-mean", dir.resolve("mean.npy").toString()));
                args.addAll(List.of("--saved-mean", dir.resolve("mean.npy").toString()));
            }
            CliTestSupport.run(fwd.toArray(new String[0])).assertOk();
        }
        CliTestSupport.run(args.toArray(new String[0])).assertOk();
        Reference64Backward.Grads ref = Reference64Backward.backward(op, Reference64Backward.widen(x),
                Reference64Backward.widen(dy), Reference64Backward.widen(w));
        GradBounds.Bounds bounds = GradBounds.of(op, x, dy, w);
        TestNpy.Float32 dx = TestNpy.readFloat32(dir.resolve("dx.npy"));
        assertArrayEquals(c.shape(), dx.shape(), "dX shape");
        Tolerances.assertWithin(c.name() + " dX", dx.data(), ref.dx(), bounds.dx());
        TestNpy.Float32 dw = TestNpy.readFloat32(dir.resolve("dw.npy"));
        assertArrayEquals(affine, dw.shape(), "dScale shape");
        Tolerances.assertWithin(c.name() + " dScale", dw.data(), ref.dScale(), bounds.dScale());
        if (c.withBias()) {
            Tolerances.assertWithin(c.name() + " dBias", TestNpy.readFloat32(dir.resolve("db.npy")).data(), ref.dBias(),
                    bounds.dBias());
        }
    }

    static Stream<Arguments> badInput() {
        return Stream.of(
                Arguments.of("dY of the wrong shape", new String[] {"grad", "layer-norm", "--grad-output", "DYBAD"},
                        List.of("--grad-output", "[4, 5]")),
                Arguments.of("missing --grad-output", new String[] {"grad", "layer-norm"}, List.of("--grad-output")),
                Arguments.of("mvn has no grad", new String[] {"grad", "mvn", "--grad-output", "DY"}, List.of("mvn")),
                Arguments.of("momentum has no gradient",
                        new String[] {"grad", "batch-norm", "--training", "--momentum", "0.5", "--grad-output", "DY"},
                        List.of("--momentum")),
                Arguments.of("batch inference without running stats",
                        new String[] {"grad", "batch-norm", "--grad-output", "DY"}, List.of("--mean")),
                Arguments.of("saved mean without saved inv std",
                        new String[] {"grad", "layer-norm", "--grad-output", "DY", "--saved-mean", "DY"},
                        List.of("--saved-inv-std")),
                Arguments.of("saved stats of the wrong shape", new String[] {"grad", "layer-norm", "--grad-output",
                    "DY", "--saved-mean", "DY", "--saved-inv-std", "DY"}, List.of("--saved-mean", "[4, 1]")),
                Arguments.of("grad bias for rms-norm", new String[] {"grad", "rms-norm", "--grad-output", "DY",
                    "--output-grad-bias", "OUT"}, List.of("--output-grad-bias")),
                Arguments.of("one value per channel in training", new String[] {"grad", "batch-norm", "--training",
                    "--input", "X13", "--grad-output", "DY13"}, List.of("more than 1 value per channel")),
                Arguments.of("float16 dY with float32 X", new String[] {"grad", "layer-norm", "--grad-output",
                    "@dyh.npy"}, List.of("--grad-output", "float16", "float32")),
                Arguments.of("float32 dY with bfloat16 X", new String[] {"grad", "layer-norm", "--bf16", "--input",
                    "@xb.npy", "--grad-output", "DY"}, List.of("--grad-output", "--bf16 expects <u2 files")),
                Arguments.of("bfloat16 dY without --bf16", new String[] {"grad", "layer-norm", "--grad-output",
                    "@dyb.npy"}, List.of("--grad-output", "dtype <u2 holds bfloat16 only with --bf16")),
                Arguments.of("float64 saved statistics with float32 X", new String[] {"grad", "layer-norm",
                    "--grad-output", "DY", "--saved-mean", "@m64.npy", "--saved-inv-std", "@i32.npy"},
                        List.of("--saved-mean", "float64", "float32")),
                Arguments.of("float32 saved statistics with float64 X", new String[] {"grad", "layer-norm",
                    "--input", "@x64.npy", "--grad-output", "@dy64.npy", "--saved-mean", "@i32.npy",
                    "--saved-inv-std", "@i32.npy"}, List.of("--saved-mean", "float32", "float64")),
                Arguments.of("--channels-last on rms-norm", new String[] {"grad", "rms-norm", "--grad-output", "DY",
                    "--channels-last"}, List.of("--channels-last applies to batch-norm, group-norm, instance-norm")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badInput")
    void badInputExitsTwoAndWritesNothing(String name, String[] args, List<String> mustMention) throws Exception {
        TestNpy.writeFloat32(dir.resolve("x.npy"), new long[] {4, 5}, CliTestSupport.gaussian(1, 20, 0, 1));
        TestNpy.writeFloat32(dir.resolve("dy.npy"), new long[] {4, 5}, CliTestSupport.gaussian(2, 20, 0, 1));
        TestNpy.writeFloat32(dir.resolve("dybad.npy"), new long[] {5, 4}, CliTestSupport.gaussian(3, 20, 0, 1));
        TestNpy.writeFloat32(dir.resolve("x13.npy"), new long[] {1, 3}, new float[] {1, 2, 3});
        TestNpy.writeFloat32(dir.resolve("dy13.npy"), new long[] {1, 3}, new float[] {1, 2, 3});
        float[] g = CliTestSupport.gaussian(4, 20, 0, 1);
        Npy.writeTensor(dir.resolve("dyh.npy"), HostTensor.convert(g, DType.FLOAT16, 4, 5));
        Npy.writeTensor(dir.resolve("dyb.npy"), HostTensor.convert(g, DType.BFLOAT16, 4, 5));
        Npy.writeTensor(dir.resolve("xb.npy"), HostTensor.convert(g, DType.BFLOAT16, 4, 5));
        Npy.writeTensor(dir.resolve("x64.npy"), HostTensor.convert(g, DType.FLOAT64, 4, 5));
        Npy.writeTensor(dir.resolve("dy64.npy"), HostTensor.convert(g, DType.FLOAT64, 4, 5));
        Npy.writeTensor(dir.resolve("m64.npy"), HostTensor.convert(new float[4], DType.FLOAT64, 4, 1));
        Npy.writeTensor(dir.resolve("i32.npy"), HostTensor.convert(new float[] {1, 1, 1, 1}, DType.FLOAT32, 4, 1));
        List<String> full = new ArrayList<>();
        boolean hasInput = false;
        for (String a : args) {
            hasInput |= a.equals("--input");
            full.add(a.equals("DY") ? dir.resolve("dy.npy").toString() : a.equals("DYBAD")
                    ? dir.resolve("dybad.npy").toString() : a.equals("X13") ? dir.resolve("x13.npy").toString()
                            : a.equals("DY13") ? dir.resolve("dy13.npy").toString() : a.equals("OUT")
                                    ? dir.resolve("db.npy").toString() : a.startsWith("@")
                                            ? dir.resolve(a.substring(1)).toString() : a);
        }
        if (!hasInput) {
            full.addAll(List.of("--input", dir.resolve("x.npy").toString()));
        }
        full.addAll(List.of("--backend", "java", "--output-grad-input", dir.resolve("dx.npy").toString()));
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(full.toArray(new String[0]));
        assertEquals(2, r.code(), () -> "exit code\n" + r);
        r.assertNoStackTrace();
        for (String m : mustMention) {
            assertTrue(r.err().contains(m), () -> "stderr should mention '" + m + "'\n" + r);
        }
        CliTestSupport.assertUnchanged(before, dir, r);
        assertFalse(Files.exists(dir.resolve("dx.npy")));
    }
}
