package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.Shape;

/** Reads the files NumPy wrote (src/test/resources/npy, made by make_fixtures.py). */
class NpyGoldenTest {
    /** How every unsupported-dtype message ends: the types the reader decodes. */
    static final String EXPECTED = "expected float32 ('<f4'), float16 ('<f2'), float64 ('<f8')"
            + " or bfloat16 bits ('<u2')";

    @ParameterizedTest
    @ValueSource(strings = {"f4_2x3.npy", "f4_2x3_v2.npy", "f4_2x3_v3.npy"})
    void readsCOrderFloat32InEveryVersion(String name) {
        NpyArray a = Npy.read(NpyFixtures.fixture(name));
        assertEquals("<f4", a.descr());
        assertEquals(DType.FLOAT32, a.dtype());
        assertArrayEquals(new long[] {2, 3}, a.shape());
        assertArrayEquals(NpyFixtures.values(6), a.data());
    }

    @Test
    void readsBigEndianFloat32() {
        NpyArray a = Npy.read(NpyFixtures.fixture("f4be_2x3.npy"));
        assertEquals(">f4", a.descr());
        assertEquals(DType.FLOAT32, a.dtype());
        assertArrayEquals(new long[] {2, 3}, a.shape());
        assertArrayEquals(NpyFixtures.values(6), a.data());
    }

    @Test
    void readsOneAndThreeDimensions() {
        assertArrayEquals(NpyFixtures.values(5), Npy.read(NpyFixtures.fixture("f4_5.npy")).data());
        HostTensor t = Npy.readTensor(NpyFixtures.fixture("f4_2x3x4.npy"));
        assertEquals(Shape.of(2, 3, 4), t.shape());
        assertArrayEquals(NpyFixtures.values(24), t.data());
    }

    @Test
    void readsScalar() {
        NpyArray a = Npy.read(NpyFixtures.fixture("f4_scalar.npy"));
        assertArrayEquals(new long[0], a.shape());
        assertArrayEquals(new float[] {3.5f}, a.data());
        assertEquals(Shape.of(new long[0]), Npy.readTensor(NpyFixtures.fixture("f4_scalar.npy")).shape());
    }

    @Test
    void readsZeroSize() {
        NpyArray a = Npy.read(NpyFixtures.fixture("f4_0x4.npy"));
        assertArrayEquals(new long[] {0, 4}, a.shape());
        assertEquals(0, a.size());
    }

    private static <T extends NpyFormatException> T fails(Class<T> type, String fixture, String problem) {
        Path file = NpyFixtures.fixture(fixture);
        T e = assertThrows(type, () -> Npy.read(file));
        assertEquals(file + ": " + problem, e.getMessage());
        assertEquals(file, e.file());
        assertEquals(problem, e.problem());
        return e;
    }

    @Test
    void uint16IsBfloat16OnlyWhenAskedFor() {
        NpyUnsupportedDTypeException e = fails(NpyUnsupportedDTypeException.class, "u2_2x3.npy",
                "dtype <u2 is read only as bfloat16 bits, and only when bfloat16 is asked for (Npy.read(file, true));"
                        + " other uint16 data is not supported");
        assertEquals("<u2", e.descr());
        assertEquals(Optional.of(DType.BFLOAT16), e.dtype());
    }

    @Test
    void int32IsUnsupported() {
        NpyUnsupportedDTypeException e = fails(NpyUnsupportedDTypeException.class, "i4_3.npy",
                "dtype <i4 is not supported: " + EXPECTED);
        assertEquals("<i4", e.descr());
        assertEquals(Optional.empty(), e.dtype());
    }

    @Test
    void objectArraysAreRefused() {
        NpyUnsupportedDTypeException e = fails(NpyUnsupportedDTypeException.class, "object_3.npy",
                "object arrays (dtype '|O') are not supported: their data is a pickle of Python objects;"
                        + " " + EXPECTED);
        assertEquals("|O", e.descr());
    }

    @Test
    void structuredDtypesAreRefused() {
        NpyUnsupportedDTypeException e = fails(NpyUnsupportedDTypeException.class, "structured_2.npy",
                "structured dtype [('a', '<f4'), ('b', '<i4')] is not supported: " + EXPECTED);
        assertEquals("[('a', '<f4'), ('b', '<i4')]", e.descr());
    }

    @Test
    void fortranOrderIsRefused() {
        fails(NpyFormatException.class, "fortran_2x3.npy",
                "Fortran-order arrays are not supported: save with np.ascontiguousarray");
    }

    @Test
    void truncatedDataIsRefused() {
        fails(NpyFormatException.class, "truncated_data_3x4.npy",
                "truncated: shape [3, 4] needs 48 bytes of data, file has 40");
    }

    @Test
    void trailingDataIsRefused() {
        NpyFormatException e = fails(NpyFormatException.class, "trailing_data_3x4.npy",
                "corrupt: shape [3, 4] needs 48 bytes of data, file has 52 (4 trailing bytes)");
        assertTrue(e instanceof IllegalArgumentException);
    }

    @Test
    void truncatedHeaderIsRefused() {
        fails(NpyFormatException.class, "truncated_header.npy",
                "truncated header: the header length field says 118 bytes, but only 30 follow");
    }
}
