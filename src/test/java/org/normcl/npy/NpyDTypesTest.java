package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.normcl.DType;
import org.normcl.HalfFloats;
import org.normcl.HostTensor;
import org.normcl.Shape;

/**
 * float16 ({@code <f2}), float64 ({@code <f8}) and bfloat16 ({@code <u2} bit patterns): reading
 * NumPy's files in both byte orders, writing byte-identical files, and round trips that keep every
 * bit pattern (NaN payloads, infinities, subnormals).
 */
class NpyDTypesTest {
    @TempDir
    Path dir;

    /** The bit patterns make_fixtures.py stores in f2_special.npy (see its comments). */
    static final int[] F2_SPECIAL = {0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7E00,
        0x7C01, 0xFE01, 0x8001, 0xC100};
    /** The bit patterns of f8_special.npy. */
    static final long[] F8_SPECIAL = {0x0000000000000000L, 0x8000000000000000L, 0x0000000000000001L,
        0x8010000000000000L, 0x7FEFFFFFFFFFFFFFL, 0x7FF0000000000000L, 0xFFF0000000000000L, 0x7FF8000000000000L,
        0x7FF8000000001234L, 0x41CDCD6500400000L, 0x3FB999999999999AL};
    /** The bit patterns of u2_bf16_special.npy. */
    static final int[] BF16_SPECIAL = {0x7FC0, 0xFFC1, 0x7F81, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x3F80, 0xC2C8, 0x7F7F};

    static short[] shorts(int[] bits) {
        short[] s = new short[bits.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = (short) bits[i];
        }
        return s;
    }

    static double[] doubles(long[] bits) {
        double[] d = new double[bits.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = Double.longBitsToDouble(bits[i]);
        }
        return d;
    }

    /** The fixture values 0.5 i - 1.25 as a tensor of {@code dtype} (exact in every type). */
    static HostTensor values(DType dtype, long... dims) {
        return HostTensor.convert(NpyFixtures.values(Math.toIntExact(Shape.of(dims).size())), dtype, dims);
    }

    static void assertSameBits(HostTensor expected, HostTensor actual) {
        assertEquals(expected.dtype(), actual.dtype(), "dtype");
        assertEquals(expected.shape(), actual.shape(), "shape");
        switch (expected.dtype()) {
            case FLOAT32: {
                float[] e = expected.data();
                float[] a = actual.data();
                for (int i = 0; i < e.length; i++) {
                    assertEquals(Float.floatToRawIntBits(e[i]), Float.floatToRawIntBits(a[i]), "element " + i);
                }
                break;
            }
            case FLOAT64: {
                double[] e = expected.doubles();
                double[] a = actual.doubles();
                for (int i = 0; i < e.length; i++) {
                    assertEquals(Double.doubleToRawLongBits(e[i]), Double.doubleToRawLongBits(a[i]), "element " + i);
                }
                break;
            }
            default:
                assertArrayEquals(expected.bits(), actual.bits());
        }
    }

    // ---- NumPy's files --------------------------------------------------------------------------

    static Stream<Arguments> numpyFiles() {
        return Stream.of(
                Arguments.of("f2_2x3.npy", "<f2", values(DType.FLOAT16, 2, 3)),
                Arguments.of("f2be_2x3.npy", ">f2", values(DType.FLOAT16, 2, 3)),
                Arguments.of("f2_3.npy", "<f2", values(DType.FLOAT16, 3)),
                Arguments.of("f8_2x3.npy", "<f8", values(DType.FLOAT64, 2, 3)),
                Arguments.of("f8be_2x3.npy", ">f8", values(DType.FLOAT64, 2, 3)),
                Arguments.of("f8_2x2.npy", "<f8", values(DType.FLOAT64, 2, 2)),
                Arguments.of("u2_2x3.npy", "<u2", values(DType.BFLOAT16, 2, 3)),
                Arguments.of("u2be_2x3.npy", ">u2", values(DType.BFLOAT16, 2, 3)),
                Arguments.of("f2_special.npy", "<f2",
                        HostTensor.ofBits(shorts(F2_SPECIAL), DType.FLOAT16, F2_SPECIAL.length)),
                Arguments.of("f8_special.npy", "<f8", HostTensor.ofDoubles(doubles(F8_SPECIAL), F8_SPECIAL.length)),
                Arguments.of("u2_bf16_special.npy", "<u2",
                        HostTensor.ofBits(shorts(BF16_SPECIAL), DType.BFLOAT16, BF16_SPECIAL.length)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("numpyFiles")
    void readsNumPyFilesBitForBit(String fixture, String descr, HostTensor expected) {
        NpyArray a = Npy.read(NpyFixtures.fixture(fixture), true);
        assertEquals(descr, a.descr());
        assertEquals(expected.dtype(), a.dtype());
        assertArrayEquals(expected.shape().dims(), a.shape());
        assertSameBits(expected, a.toTensor());
        assertSameBits(expected, Npy.readTensor(NpyFixtures.fixture(fixture), true));
        if (expected.dtype() != DType.BFLOAT16) {
            assertSameBits(expected, Npy.readTensor(NpyFixtures.fixture(fixture)));
        }
    }

    /** Little-endian files written by Java are byte-identical to NumPy's np.save of the same array. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("numpyFiles")
    void writesTheSameBytesAsNumPy(String fixture, String descr, HostTensor tensor) throws Exception {
        if (descr.startsWith(">")) {
            return; // Java writes little-endian only, as np.save does for native arrays here
        }
        Path f = dir.resolve("out.npy");
        Npy.writeTensor(f, tensor);
        assertArrayEquals(Files.readAllBytes(NpyFixtures.fixture(fixture)), Files.readAllBytes(f));
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("staged.npy"), tensor);
            out.commit();
        }
        assertArrayEquals(Files.readAllBytes(NpyFixtures.fixture(fixture)),
                Files.readAllBytes(dir.resolve("staged.npy")));
    }

    @Test
    void specialFloat16ValuesMeanWhatTheyShould() {
        float[] v = Npy.read(NpyFixtures.fixture("f2_special.npy")).data();
        assertEquals(0x1p-24f, v[2], "smallest subnormal");
        assertEquals(0x3FFp-24f, v[3], "largest subnormal");
        assertEquals(0x1p-14f, v[4], "smallest normal");
        assertEquals(65504f, v[6]);
        assertEquals(Float.POSITIVE_INFINITY, v[7]);
        assertEquals(Float.NEGATIVE_INFINITY, v[8]);
        assertTrue(Float.isNaN(v[9]) && Float.isNaN(v[10]) && Float.isNaN(v[11]));
        assertEquals(-0x1p-24f, v[12]);
        assertEquals(-2.5f, v[13]);
    }

    @Test
    void specialBfloat16ValuesMeanWhatTheyShould() {
        HostTensor t = Npy.readTensor(NpyFixtures.fixture("u2_bf16_special.npy"), true);
        float[] v = t.toFloats();
        assertTrue(Float.isNaN(v[0]) && Float.isNaN(v[1]) && Float.isNaN(v[2]), "NaN stays NaN");
        assertEquals(Float.POSITIVE_INFINITY, v[3]);
        assertEquals(Float.NEGATIVE_INFINITY, v[4]);
        assertEquals(Float.intBitsToFloat(0x00010000), v[5], "subnormal");
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(v[6]));
        assertEquals(1f, v[7]);
        assertEquals(-100f, v[8]);
    }

    // ---- round trips ------------------------------------------------------------------------------

    static Stream<Arguments> dtypesAndShapes() {
        long[][] shapes = {{2, 3}, {7}, {}, {0, 4}, {4, 0}, {2, 3, 4}, {3, 1, 5, 2},
            // more than one 1 MiB chunk for every element size, with a partial last chunk
            {3, 200_001}};
        return Arrays.stream(DType.values())
                .flatMap(t -> Arrays.stream(shapes).map(s -> Arguments.of(t, s)));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("dtypesAndShapes")
    void roundTripsEveryDtypeAndShape(DType dtype, long[] shape) {
        int n = Math.toIntExact(Shape.of(shape).size());
        SplittableRandom rnd = new SplittableRandom(n * 31L + dtype.ordinal());
        HostTensor t = randomBits(dtype, n, rnd, shape);
        Path f = dir.resolve("x.npy");
        Npy.writeTensor(f, t);
        NpyArray a = Npy.read(f, true);
        assertEquals(dtype.npyDescr(), a.descr());
        assertEquals(n, a.size());
        assertSameBits(t, a.toTensor());
        assertArrayEquals(new String[] {"x.npy"}, NpyFixtures.list(dir), "no temporary file is left");
    }

    /** Random bit patterns: every kind of value, NaNs with payloads included. */
    static HostTensor randomBits(DType dtype, int n, SplittableRandom rnd, long... shape) {
        switch (dtype) {
            case FLOAT32: {
                float[] f = new float[n];
                for (int i = 0; i < n; i++) {
                    f[i] = Float.intBitsToFloat(rnd.nextInt());
                }
                return HostTensor.of(f, shape);
            }
            case FLOAT64: {
                double[] d = new double[n];
                for (int i = 0; i < n; i++) {
                    d[i] = Double.longBitsToDouble(rnd.nextLong());
                }
                return HostTensor.ofDoubles(d, shape);
            }
            default: {
                short[] s = new short[n];
                for (int i = 0; i < n; i++) {
                    s[i] = (short) rnd.nextInt();
                }
                return HostTensor.ofBits(s, dtype, shape);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"FLOAT16", "BFLOAT16"})
    void everySixteenBitPatternRoundTrips(DType dtype) {
        short[] all = new short[1 << 16];
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) i;
        }
        HostTensor t = HostTensor.ofBits(all, dtype, 256, 256);
        Path f = dir.resolve("all.npy");
        Npy.writeTensor(f, t);
        assertSameBits(t, Npy.readTensor(f, true));
    }

    @Test
    void float64NaNPayloadsAndExtremesRoundTrip() {
        HostTensor t = HostTensor.ofDoubles(new double[] {Double.longBitsToDouble(0x7FF0000000000001L),
            Double.longBitsToDouble(0xFFFFFFFFFFFFFFFFL), Double.MIN_VALUE, -Double.MAX_VALUE, 1e9 + 1e-7, -0.0}, 6);
        Path f = dir.resolve("d.npy");
        Npy.writeTensor(f, t);
        assertSameBits(t, Npy.readTensor(f));
    }

    @Test
    void halfConversionsKeepNaNInfinityAndSubnormals() {
        float[] in = {Float.NaN, Float.POSITIVE_INFINITY, -65520f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 400f, -0f};
        HostTensor h = HostTensor.convert(in, DType.FLOAT16, in.length);
        Path f = dir.resolve("h.npy");
        Npy.writeTensor(f, h);
        float[] back = Npy.read(f).data();
        assertTrue(Float.isNaN(back[0]));
        assertEquals(Float.POSITIVE_INFINITY, back[1]);
        assertEquals(Float.NEGATIVE_INFINITY, back[2], "-65520 rounds to -infinity in float16");
        assertEquals(0x1p-24f, back[3]);
        assertEquals(0f, back[4], "half the smallest subnormal rounds to even: 0");
        assertEquals(0x1p-24f, back[5]);
        assertEquals(400f, back[6]);
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(back[7]));
        HostTensor b = HostTensor.convert(new float[] {Float.NaN, Float.intBitsToFloat(0x7F800001)}, DType.BFLOAT16, 2);
        Npy.writeTensor(f, b);
        float[] bb = Npy.readTensor(f, true).toFloats();
        assertTrue(Float.isNaN(bb[0]) && Float.isNaN(bb[1]), "bfloat16 NaN stays NaN, even a signalling one");
    }

    // ---- what reading gives, and refuses ------------------------------------------------------------

    @Test
    void arrayAccessorsConvertAndCopy() {
        NpyArray a = Npy.read(NpyFixtures.fixture("f8_special.npy"));
        assertEquals(DType.FLOAT64, a.dtype());
        assertEquals(1e9 + 0.5, a.toDoubles()[9]);
        assertEquals((float) 0.1, a.data()[10], "data() rounds float64 to float32");
        HostTensor t1 = a.toTensor();
        HostTensor t2 = a.toTensor();
        assertNotSame(t1.array(), t2.array());
        t1.doubles()[0] = 42;
        assertEquals(0.0, a.toDoubles()[0], "the array is immutable");
        assertEquals("NpyArray[<f8, [11]]", a.toString());
        NpyArray h = Npy.read(NpyFixtures.fixture("f2be_2x3.npy"));
        assertEquals(DType.FLOAT16, h.dtype());
        assertArrayEquals(NpyFixtures.values(6), h.data());
        assertEquals(Shape.of(2, 3), h.toShape());
    }

    @Test
    void bf16FlagChangesOnlyUint16() {
        assertEquals(DType.FLOAT32, Npy.readTensor(NpyFixtures.fixture("f4_2x3.npy"), true).dtype());
        assertEquals(DType.FLOAT16, Npy.readTensor(NpyFixtures.fixture("f2_2x3.npy"), true).dtype());
        assertEquals(DType.FLOAT64, Npy.readTensor(NpyFixtures.fixture("f8_2x3.npy"), true).dtype());
        assertEquals(DType.BFLOAT16, Npy.readTensor(NpyFixtures.fixture("u2_2x3.npy"), true).dtype());
    }

    @ParameterizedTest
    @ValueSource(strings = {"u2_2x3.npy", "u2be_2x3.npy"})
    void uint16WithoutBf16IsRefused(String fixture) {
        Path f = NpyFixtures.fixture(fixture);
        NpyUnsupportedDTypeException e = assertThrows(NpyUnsupportedDTypeException.class, () -> Npy.readTensor(f));
        assertTrue(e.getMessage().startsWith(f + ": dtype "), e.getMessage());
        assertTrue(e.getMessage().contains("bfloat16"), e.getMessage());
        assertEquals(DType.BFLOAT16, e.dtype().orElseThrow());
        assertThrows(NpyUnsupportedDTypeException.class, () -> Npy.read(f, false));
    }

    @ParameterizedTest
    @ValueSource(strings = {"<i4", "|b1", "<c8", "<u4", "|u1", "<i2", "<f16"})
    void otherTypesAreRefusedEvenWithBf16(String descr) {
        Path f = NpyFixtures.file(dir, "x.npy",
                NpyFixtures.npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2,)}", 0));
        NpyUnsupportedDTypeException e = assertThrows(NpyUnsupportedDTypeException.class, () -> Npy.read(f, true));
        assertEquals(f + ": dtype " + descr + " is not supported: expected float32 ('<f4'), float16 ('<f2'),"
                + " float64 ('<f8') or bfloat16 bits ('<u2')", e.getMessage());
        assertFalse(e.dtype().isPresent());
    }

    @ParameterizedTest
    @ValueSource(strings = {"<f2", ">f8", "<u2"})
    void truncatedDataOfOtherTypesIsRefused(String descr) {
        int size = Integer.parseInt(descr.substring(2));
        Path f = NpyFixtures.file(dir, "x.npy",
                NpyFixtures.npy(1, "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2, 3)}",
                        new byte[6 * size - 1]));
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(f, true));
        assertEquals(f + ": truncated: shape [2, 3] needs " + 6 * size + " bytes of data, file has " + (6 * size - 1),
                e.getMessage());
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void stagedOutputsOfEveryTypeAreAllOrNothing(DType dtype) {
        HostTensor t = values(dtype, 2, 3);
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("a.npy"), t);
            out.stage(dir.resolve("b.npy"), new float[] {1}, new long[] {1});
            assertThrows(IllegalArgumentException.class, () -> out.stage(dir.resolve("a.npy"), t));
        } // not committed
        assertArrayEquals(new String[0], NpyFixtures.list(dir));
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("a.npy"), t);
            out.commit();
        }
        assertSameBits(t, Npy.readTensor(dir.resolve("a.npy"), true));
        assertEquals(HalfFloats.halfToFloat(HalfFloats.floatToHalf(-1.25f)),
                Npy.read(dir.resolve("a.npy"), true).data()[0]);
    }
}
