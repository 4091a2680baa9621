package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.Shape;

class NpyRoundTripTest {
    @TempDir
    Path dir;

    static Stream<Arguments> shapes() {
        return Stream.of(
                Arguments.of((Object) new long[] {2, 3}),
                Arguments.of((Object) new long[] {7}),
                Arguments.of((Object) new long[] {}),
                Arguments.of((Object) new long[] {0, 4}),
                Arguments.of((Object) new long[] {4, 0}),
                Arguments.of((Object) new long[] {0}),
                Arguments.of((Object) new long[] {2, 3, 4}),
                Arguments.of((Object) new long[] {1, 1, 1, 1, 1}),
                Arguments.of((Object) new long[] {3, 1, 5, 2}),
                // more than one 1 MiB chunk, with a partial last chunk
                Arguments.of((Object) new long[] {3, 100_001}));
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void roundTrip(long[] shape) {
        int n = Math.toIntExact(Shape.of(shape).size());
        float[] data = NpyFixtures.values(n);
        Path f = dir.resolve("x.npy");
        Npy.write(f, data, shape);
        NpyArray a = Npy.read(f);
        assertEquals("<f4", a.descr());
        assertEquals(DType.FLOAT32, a.dtype());
        assertArrayEquals(shape, a.shape());
        assertArrayEquals(data, a.data());
        assertEquals(n, a.size());
        assertEquals(Shape.of(shape), a.toShape());
        assertArrayEquals(new String[] {"x.npy"}, NpyFixtures.list(dir), "no temporary file is left");
    }

    @Test
    void preservesEveryBitPattern() {
        float[] data = {
            0f, -0f, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_NORMAL, Float.MAX_VALUE,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN,
            Float.intBitsToFloat(0x7FC0_1234), Float.intBitsToFloat(0xFFC0_0001), 1e-40f, 3.14159265f
        };
        Path f = dir.resolve("bits.npy");
        Npy.write(f, data, new long[] {data.length});
        float[] back = Npy.read(f).data();
        for (int i = 0; i < data.length; i++) {
            assertEquals(Float.floatToRawIntBits(data[i]), Float.floatToRawIntBits(back[i]), "element " + i);
        }
    }

    @Test
    void scalarShapeHoldsOneElement() {
        Path f = dir.resolve("s.npy");
        Npy.write(f, new float[] {42.5f}, new long[0]);
        NpyArray a = Npy.read(f);
        assertEquals(0, a.shape().length);
        assertEquals(1, a.size());
        assertEquals(42.5f, a.data()[0]);
    }

    @Test
    void tensorRoundTrip() {
        HostTensor t = HostTensor.of(NpyFixtures.values(24), 2, 3, 4);
        Path f = dir.resolve("t.npy");
        Npy.writeTensor(f, t);
        HostTensor back = Npy.readTensor(f);
        assertEquals(Shape.of(2, 3, 4), back.shape());
        assertArrayEquals(t.data(), back.data());
    }

    @Test
    void resultIsImmutable() {
        Path f = dir.resolve("x.npy");
        Npy.write(f, new float[] {1, 2}, new long[] {2});
        NpyArray a = Npy.read(f);
        a.data()[0] = 99;
        a.shape()[0] = 99;
        assertEquals(1f, a.data()[0]);
        assertEquals(2L, a.shape()[0]);
        assertEquals("NpyArray[<f4, [2]]", a.toString());
    }

    @Test
    void writeReplacesAnExistingFile() throws Exception {
        Path f = dir.resolve("x.npy");
        Files.writeString(f, "old contents, much longer than the new file will be ".repeat(20));
        Npy.write(f, new float[] {1, 2, 3}, new long[] {3});
        assertArrayEquals(new float[] {1, 2, 3}, Npy.read(f).data());
        assertEquals(128 + 12, Files.size(f));
        assertArrayEquals(new String[] {"x.npy"}, NpyFixtures.list(dir));
    }

    @Test
    void writeToARelativePath() throws Exception {
        // A path relative to the working directory, inside this test's temporary folder.
        Path f = Path.of("").toAbsolutePath().relativize(dir.resolve("npy-relative.npy"));
        try {
            Npy.write(f, new float[] {5}, new long[] {1});
            assertArrayEquals(new float[] {5}, Npy.read(f).data());
        } finally {
            Files.deleteIfExists(f);
        }
    }

    @Test
    void writeRejectsMismatchedData() {
        Path f = dir.resolve("x.npy");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Npy.write(f, new float[5], new long[] {2, 3}));
        assertEquals("data has 5 elements but shape [2, 3] needs 6", e.getMessage());
        assertEquals(0, NpyFixtures.list(dir).length);
    }

    @Test
    void writeRejectsNegativeDimension() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Npy.write(dir.resolve("x.npy"), new float[0], new long[] {2, -1}));
        assertEquals("shape[1] = -1: expected >= 0 in [2, -1]", e.getMessage());
    }

    @Test
    void writeRejectsNulls() {
        Path f = dir.resolve("x.npy");
        assertEquals("file", assertThrows(NullPointerException.class,
                () -> Npy.write(null, new float[1], new long[] {1})).getMessage());
        assertEquals("data", assertThrows(NullPointerException.class,
                () -> Npy.write(f, null, new long[] {1})).getMessage());
        assertEquals("shape", assertThrows(NullPointerException.class,
                () -> Npy.write(f, new float[1], null)).getMessage());
        assertEquals("file", assertThrows(NullPointerException.class, () -> Npy.read(null)).getMessage());
    }

    @Test
    void writeIntoAMissingDirectoryNamesTheFile() {
        Path f = dir.resolve("missing").resolve("x.npy");
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> Npy.write(f, new float[1], new long[] {1}));
        assertEquals("cannot write " + f + ": directory " + dir.resolve("missing") + " does not exist",
                e.getMessage());
    }

    @Test
    void writeOntoADirectoryFails() throws Exception {
        Path d = Files.createDirectory(dir.resolve("x.npy"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Npy.write(d, new float[1], new long[] {1}));
        assertEquals("cannot write " + d + ": it is a directory: expected a new file name, a regular file"
                + " or a symbolic link to one", e.getMessage());
        assertTrue(Files.isDirectory(d));
        assertArrayEquals(new String[] {"x.npy"}, NpyFixtures.list(dir));
    }
}
