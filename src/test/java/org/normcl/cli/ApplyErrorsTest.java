package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.normcl.cli.CliTestSupport.gaussian;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.BeforeEach;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.NormEngine;
import org.normcl.npy.Npy;
import org.normcl.reference.TestNpy;

/**
 * The failure contract of {@code normcl apply}: every bad-usage or bad-input path exits 2 with a
 * one-line message on stderr that names the parameter, prints no stack trace, and leaves the
 * directory exactly as it was (no output file, no temporary file, pre-existing outputs untouched).
 */
class ApplyErrorsTest {
    @TempDir
    Path dir;

    /** Inputs every case may use, created before each case. */
    @BeforeEach
    void inputs() throws IOException {
        // x: (N, C, D) = (2, 6, 5); layer-norm normalizes the last axis: scale/bias [5].
        TestNpy.writeFloat32(dir.resolve("x.npy"), new long[] {2, 6, 5}, gaussian(1, 60, 0, 1));
        TestNpy.writeFloat32(dir.resolve("s17.npy"), new long[] {17}, gaussian(2, 17, 1, 0.1));
        TestNpy.writeFloat32(dir.resolve("s6.npy"), new long[] {6}, gaussian(3, 6, 1, 0.1));
        TestNpy.writeFloat32(dir.resolve("m6.npy"), new long[] {6}, new float[6]);
        TestNpy.writeFloat32(dir.resolve("v6.npy"), new long[] {6}, new float[] {1, 1, 1, 1, 1, 1});
        TestNpy.writeFloat32(dir.resolve("m4.npy"), new long[] {4}, new float[4]);
        TestNpy.writeFloat32(dir.resolve("v4.npy"), new long[] {4}, new float[] {1, 1, 1, 1});
        TestNpy.writeFloat32(dir.resolve("r2.npy"), new long[] {4, 5}, gaussian(4, 20, 0, 1));
        TestNpy.writeFloat32(dir.resolve("one3.npy"), new long[] {1, 3}, new float[] {1, 2, 3});
        TestNpy.writeFloat32(dir.resolve("r1.npy"), new long[] {6}, gaussian(5, 6, 0, 1));
        TestNpy.writeFloat64(dir.resolve("f8.npy"), new long[] {2, 6, 5}, new double[60]);
        // Other element types: float16 X and parameters, bfloat16 bits (<u2), float32 parameters.
        Npy.writeTensor(dir.resolve("xh.npy"), HostTensor.convert(gaussian(6, 60, 0, 1), DType.FLOAT16, 2, 6, 5));
        Npy.writeTensor(dir.resolve("xb.npy"), HostTensor.convert(gaussian(7, 60, 0, 1), DType.BFLOAT16, 2, 6, 5));
        Npy.writeTensor(dir.resolve("h5.npy"), HostTensor.convert(gaussian(8, 5, 1, 0.1), DType.FLOAT16, 5));
        Npy.writeTensor(dir.resolve("u5.npy"), HostTensor.convert(gaussian(9, 5, 1, 0.1), DType.BFLOAT16, 5));
        TestNpy.writeFloat32(dir.resolve("s5.npy"), new long[] {5}, gaussian(10, 5, 1, 0.1));
        TestNpy.writeFloat64(dir.resolve("m6d.npy"), new long[] {6}, new double[6]);

        byte[] good = Files.readAllBytes(dir.resolve("r2.npy"));
        byte[] badMagic = good.clone();
        badMagic[0] = 'X';
        Files.write(dir.resolve("magic.npy"), badMagic);
        Files.write(dir.resolve("trunc.npy"), Arrays.copyOf(good, good.length - 7));
        Files.write(dir.resolve("extra.npy"), Arrays.copyOf(good, good.length + 4));
        Files.write(dir.resolve("empty.npy"), new byte[0]);
        Files.writeString(dir.resolve("text.npy"), "x,y\n1.0,2.0\n3.0,4.0\n", StandardCharsets.UTF_8);
        Files.write(dir.resolve("fortran.npy"),
                rawNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (4, 5), }", new byte[80]));
        Files.write(dir.resolve("i4.npy"),
                rawNpy("{'descr': '<i4', 'fortran_order': False, 'shape': (4, 5), }", new byte[80]));
        Files.write(dir.resolve("noshape.npy"),
                rawNpy("{'descr': '<f4', 'fortran_order': False, 'shap': (4, 5), }", new byte[80]));
    }

    /** A version-1.0 {@code .npy} file with the given header dictionary and data bytes. */
    static byte[] rawNpy(String dict, byte[] body) {
        int unpadded = 10 + dict.length() + 1;
        int total = (unpadded + 63) / 64 * 64;
        String header = dict + " ".repeat(total - unpadded) + "\n";
        ByteBuffer bb = ByteBuffer.allocate(10 + header.length() + body.length).order(ByteOrder.LITTLE_ENDIAN);
        bb.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) header.length());
        bb.put(header.getBytes(StandardCharsets.ISO_8859_1)).put(body);
        return bb.array();
    }

    /**
     * One bad invocation. In {@code args}, a token ending in {@code .npy} names a file in the temp
     * directory; {@code expected} are substrings the stderr message must contain (case-insensitive).
     */
    static Arguments bad(String name, String args, String... expected) {
        return Arguments.of(name, args, expected);
    }

    static Stream<Arguments> cases() {
        String ln = "layer-norm --input x.npy --output y.npy";
        return Stream.of(
                bad("unknown OP", "softmax --input x.npy --output y.npy", "softmax", "layer-norm"),
                bad("no OP", "--input x.npy --output y.npy", "'OP'"),
                bad("missing --input", "layer-norm --output y.npy", "--input"),
                bad("missing --output", "layer-norm --input x.npy", "--output"),
                bad("input does not exist", "layer-norm --input nope.npy --output y.npy", "--input", "nope.npy",
                        "no such file"),
                bad("bad magic", "layer-norm --input magic.npy --output y.npy", "--input", "magic.npy", "not a .npy"),
                bad("truncated data", "layer-norm --input trunc.npy --output y.npy", "--input", "trunc.npy",
                        "truncated"),
                bad("trailing data", "layer-norm --input extra.npy --output y.npy", "--input", "extra.npy",
                        "trailing"),
                bad("empty file", "layer-norm --input empty.npy --output y.npy", "--input", "empty.npy"),
                bad("text file", "layer-norm --input text.npy --output y.npy", "--input", "text.npy", "not a .npy"),
                bad("fortran order", "layer-norm --input fortran.npy --output y.npy", "--input", "fortran"),
                bad("int32", "layer-norm --input i4.npy --output y.npy", "--input", "i4.npy", "<i4", "float32", "<f2",
                        "<f8", "<u2"),
                bad("uint16 without --bf16", "layer-norm --input xb.npy --output y.npy", "--input", "xb.npy",
                        "dtype <u2 holds bfloat16 only with --bf16"),
                bad("uint16 scale without --bf16", ln + " --scale u5.npy", "--scale", "u5.npy",
                        "dtype <u2 holds bfloat16 only with --bf16"),
                bad("--bf16 with a float32 X", "layer-norm --bf16 --input x.npy --output y.npy", "--input",
                        "--bf16 expects <u2 files"),
                bad("--bf16 with a float16 X", "layer-norm --bf16 --input xh.npy --output y.npy", "--input",
                        "float16", "--bf16 expects <u2 files"),
                bad("float16 scale with float32 X", ln + " --scale h5.npy", "--scale", "float16 (<f2)",
                        "float32 (<f4)"),
                bad("float16 scale with bfloat16 X", "layer-norm --bf16 --input xb.npy --output y.npy --scale h5.npy",
                        "--scale", "float16", "bfloat16"),
                bad("float32 scale and float16 bias with float16 X",
                        "layer-norm --input xh.npy --output y.npy --scale s5.npy --bias h5.npy", "--bias", "--scale",
                        "one parameter dtype"),
                bad("float64 X with float16 scale", "layer-norm --input f8.npy --output y.npy --scale h5.npy",
                        "--scale", "float16", "float64"),
                bad("--channels-last on layer-norm", ln + " --channels-last",
                        "--channels-last applies to batch-norm, group-norm, instance-norm", "layer-norm"),
                bad("--channels-last on rms-norm", "rms-norm --input x.npy --output y.npy --channels-last",
                        "--channels-last applies to batch-norm, group-norm, instance-norm"),
                bad("--channels-last on mvn", "mvn --input x.npy --output y.npy --channels-last",
                        "--channels-last applies to batch-norm, group-norm, instance-norm"),
                bad("channels-last scale of the wrong shape",
                        "instance-norm --channels-last --input x.npy --output y.npy --scale s6.npy", "--scale", "[6]",
                        "[5]"),
                bad("header without shape", "layer-norm --input noshape.npy --output y.npy", "--input", "shape"),
                bad("malformed scale file", ln + " --scale magic.npy", "--scale", "magic.npy"),
                bad("float64 running mean", "batch-norm --input x.npy --output y.npy --mean m6d.npy --var v6.npy",
                        "--mean", "float64", "float32"),
                bad("wrong scale shape", ln + " --scale s17.npy", "--scale", "[17]", "[5]"),
                bad("wrong bias shape", ln + " --bias s17.npy", "--bias", "[17]", "[5]"),
                bad("wrong instance-norm scale shape", "instance-norm --input x.npy --output y.npy --scale s17.npy",
                        "--scale", "[17]", "[6]"),
                bad("wrong per-group scale shape",
                        "group-norm --input x.npy --output y.npy --groups 3 --per-group-affine --scale s6.npy",
                        "--scale", "[6]", "[3]"),
                bad("groups not dividing C", "group-norm --input x.npy --output y.npy --groups 4", "--groups", "4",
                        "divide", "6"),
                bad("groups zero", "group-norm --input x.npy --output y.npy --groups 0", "--groups"),
                bad("groups missing", "group-norm --input x.npy --output y.npy", "--groups", "required"),
                bad("groups on layer-norm", ln + " --groups 2", "--groups", "layer-norm"),
                bad("axis on group-norm", "group-norm --input x.npy --output y.npy --groups 3 --axis 1", "--axis"),
                bad("bias on rms-norm", "rms-norm --input x.npy --output y.npy --bias s17.npy", "--bias", "rms-norm"),
                bad("axis out of range", "layer-norm --input r2.npy --output y.npy --axis 5", "--axis", "5", "rank 2"),
                bad("negative axis out of range", "layer-norm --input r2.npy --output y.npy --axis -3", "--axis",
                        "-3"),
                bad("epsilon negative", ln + " --epsilon -1", "--epsilon", "-1"),
                bad("epsilon zero", ln + " --epsilon 0", "--epsilon", "0"),
                bad("epsilon NaN", ln + " --epsilon NaN", "--epsilon", "nan"),
                bad("epsilon infinite", ln + " --epsilon Infinity", "--epsilon"),
                bad("epsilon not a number", ln + " --epsilon abc", "--epsilon", "abc"),
                bad("batch-norm inference without statistics", "batch-norm --input x.npy --output y.npy", "--mean",
                        "--var"),
                bad("--mean without --var", "batch-norm --input x.npy --output y.npy --mean m6.npy", "--var"),
                bad("--var without --mean", "batch-norm --input x.npy --output y.npy --var v6.npy", "--mean"),
                bad("running mean of wrong shape",
                        "batch-norm --input x.npy --output y.npy --mean m4.npy --var v6.npy", "--mean", "[4]", "[6]"),
                bad("running var of wrong shape",
                        "batch-norm --input x.npy --output y.npy --mean m6.npy --var v4.npy", "--var", "[4]", "[6]"),
                bad("--output-mean without --training",
                        "batch-norm --input x.npy --output y.npy --mean m6.npy --var v6.npy --output-mean om.npy",
                        "--output-mean", "--training"),
                bad("--momentum without --training",
                        "batch-norm --input x.npy --output y.npy --mean m6.npy --var v6.npy --momentum 0.5",
                        "--momentum", "--training"),
                bad("--output-var without running statistics",
                        "batch-norm --training --input x.npy --output y.npy --output-var ov.npy", "--output-var",
                        "--mean"),
                bad("--convention without --training",
                        "batch-norm --input x.npy --output y.npy --mean m6.npy --var v6.npy --convention pytorch",
                        "--convention", "--training"),
                bad("mvn default axes on rank 2", "mvn --input r2.npy --output y.npy", "--axes not given",
                        "0,2,3", "rank 2"),
                bad("momentum out of range",
                        "batch-norm --training --input x.npy --output y.npy --momentum 1.5", "--momentum", "1.5"),
                bad("bad convention", "batch-norm --training --input x.npy --output y.npy --convention keras",
                        "--convention", "keras"),
                bad("training on one value per channel", "batch-norm --training --input one3.npy --output y.npy",
                        "more than 1 value per channel", "[1, 3]"),
                bad("rank-1 input to group-norm", "group-norm --input r1.npy --output y.npy --groups 2", "--input",
                        "[6]", "rank"),
                bad("rank-1 input to batch-norm",
                        "batch-norm --input r1.npy --output y.npy --mean m6.npy --var v6.npy", "--input", "rank"),
                bad("--save-mean on rms-norm", "rms-norm --input x.npy --output y.npy --save-mean sm.npy",
                        "--save-mean", "rms-norm"),
                bad("--backend bogus", ln + " --backend bogus", "--backend", "bogus"),
                bad("--device with --backend java", ln + " --backend java --device 0", "--device"),
                bad("output directory missing", "layer-norm --input x.npy --output nodir/y.npy", "--output", "nodir",
                        "does not exist"),
                bad("statistics directory missing", ln + " --save-inv-std nodir/s.npy", "--save-inv-std", "nodir"),
                bad("output is a directory", "layer-norm --input x.npy --output .", "--output", "directory"),
                bad("two outputs on one file", ln + " --save-mean y.npy", "--save-mean", "another output"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void badInputExitsTwoWithAMessageAndNoFiles(String name, String args, String[] expected) {
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(argv(args));
        assertEquals(2, r.code(), () -> name + ": expected exit 2\n" + r);
        r.assertNoStackTrace();
        assertFalse(r.err().isBlank(), () -> name + ": no message on stderr\n" + r);
        String err = r.err().toLowerCase(Locale.ROOT);
        for (String e : expected) {
            assertTrue(err.contains(e.toLowerCase(Locale.ROOT)), () -> name + ": stderr does not mention '" + e
                    + "'\n" + r);
        }
        assertEquals("", r.out(), () -> name + ": nothing belongs on stdout\n" + r);
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    /** Every bad-input case above, again with an {@code --output} that exists: it keeps its bytes. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void existingOutputIsLeftUntouched(String name, String args, String[] expected) throws IOException {
        if (!args.contains("--output y.npy")) {
            return; // cases without a plain --output y.npy (missing, other directory, ...)
        }
        Files.writeString(dir.resolve("y.npy"), "previous contents, not an npy file", StandardCharsets.UTF_8);
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(argv(args));
        assertEquals(2, r.code(), () -> name + ": expected exit 2\n" + r);
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    @Test
    void noSuchOpenClDevice() {
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(argv("layer-norm --input x.npy --output y.npy --backend opencl"
                + " --device 99"));
        r.assertNoStackTrace();
        if (NormEngine.devices().isEmpty()) {
            CliTestSupport.requireOpenCl(); // fails under CI
            // Without OpenCL an explicit OpenCL backend is a runtime failure: exit 1, saying why.
            assertEquals(1, r.code(), r::toString);
            assertTrue(r.err().contains("OpenCL"), r::toString);
        } else {
            assertEquals(2, r.code(), r::toString);
            assertTrue(r.err().contains("'99'") && r.err().contains("device"), r::toString);
            // The message lists the devices there are.
            assertTrue(r.err().contains(NormEngine.devices().get(0).name()), r::toString);
        }
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    /**
     * Several outputs where one cannot be renamed into place (a 300-character name: the file
     * system's limit is 255): the failure comes in the commit, after {@code --output} was already
     * renamed, which must be rolled back. An I/O failure while writing is a runtime failure: exit 1.
     */
    @Test
    void lateWriteFailureRollsBackEveryOutput() {
        String longName = "m".repeat(300) + ".npy";
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(argv("layer-norm --input x.npy --output y.npy --save-inv-std"
                + " istd.npy --save-mean " + longName));
        assertEquals(1, r.code(), r::toString);
        r.assertNoStackTrace();
        assertTrue(r.err().contains("--save-mean: cannot write"), () -> "the message names the option\n" + r);
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    /**
     * The same late failure with an {@code --output} that existed before: NpyOutputs.commit moves an
     * existing target aside before replacing it and moves it back when a later rename fails, so
     * {@code y.npy} keeps its previous bytes.
     */
    @Test
    void lateWriteFailureLeavesExistingOutputUntouched() throws IOException {
        Files.writeString(dir.resolve("y.npy"), "previous contents", StandardCharsets.UTF_8);
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(argv("layer-norm --input x.npy --output y.npy --save-mean "
                + "m".repeat(300) + ".npy"));
        assertEquals(1, r.code(), r::toString);
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    /**
     * An input larger than the heap (a child JVM with 32 MiB and a 48 MB X): one line saying to
     * raise the heap with JAVA_OPTS (what scripts/normcl passes to java), exit 1, no output. It
     * used to end the JVM with an OutOfMemoryError's stack trace.
     */
    @Test
    void outOfHeapSaysHowToRaiseItAndWritesNothing() throws IOException {
        Path big = dir.resolve("big.npy");
        Files.write(big, rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (12000000,), }", new byte[0]));
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(big.toFile(), "rw")) {
            f.setLength(f.length() + 4L * 12_000_000); // zeros, sparse
        }
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.runInChildJvm(Map.of("JAVA_TOOL_OPTIONS", "-Xmx32m"),
                argv("layer-norm --input big.npy --output y.npy --save-mean m.npy --backend java"));
        assertEquals(1, r.code(), r::toString);
        r.assertNoStackTrace();
        List<String> errors = r.err().lines().filter(l -> l.contains("error")).toList();
        assertEquals(1, errors.size(), r::toString);
        assertTrue(errors.get(0).startsWith("normcl apply: error: not enough Java heap"), r::toString);
        assertTrue(errors.get(0).contains("JAVA_OPTS=-Xmx"), r::toString);
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    /** A successful run after failures still works in the same directory (no leftover state). */
    @Test
    void successAfterFailureInSameDirectory() {
        assertEquals(2, CliTestSupport.run(argv("layer-norm --input x.npy --output y.npy --scale s17.npy")).code());
        CliTestSupport.run(argv("layer-norm --input x.npy --output y.npy --backend java")).assertOk();
        assertTrue(Files.isRegularFile(dir.resolve("y.npy")));
        assertEquals(List.of(2L, 6L, 5L), Arrays.stream(TestNpy.readFloat32(dir.resolve("y.npy")).shape())
                .boxed().toList());
    }

    /** Splits an argument line; tokens ending in .npy or holding a '/' are resolved in the temp dir. */
    private String[] argv(String line) {
        List<String> out = new ArrayList<>();
        out.add("apply");
        for (String t : line.trim().split("\\s+")) {
            if (t.endsWith(".npy") || t.contains("/") || t.equals(".")) {
                out.add(dir.resolve(t).normalize().toString());
            } else {
                out.add(t);
            }
        }
        return out.toArray(new String[0]);
    }
}
