package org.normcl.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.opentest4j.AssertionFailedError;

/** Tests of the test-support helpers: {@link Tolerance}, {@link TestNpy}, {@link TestJson}. */
class TestSupportTest {

    private static final double NAN = Double.NaN;
    private static final double INF = Double.POSITIVE_INFINITY;

    // ---- Tolerance ----------------------------------------------------------------------------

    @Test
    void toleranceAcceptsWithinAtolPlusRtol() {
        Tolerance.assertClose("ok", new float[] {1.0f, 0f, -2f}, new double[] {1.0005, 1e-7, -2.001}, 1e-6, 1e-3);
        Tolerance.assertClose("specials", new double[] {NAN, INF, -INF}, new double[] {NAN, INF, -INF}, 0, 0);
        Tolerance.assertClose("empty", new float[0], new double[0], 0, 0);
    }

    @Test
    void toleranceNamesFirstAndWorstOffender() {
        AssertionFailedError e = assertThrows(AssertionFailedError.class, () -> Tolerance.assertClose("y",
                new float[] {1f, 2.1f, 3f, 9f}, new double[] {1, 2, 3, 4}, 1e-6, 1e-3));
        String m = e.getMessage();
        assertTrue(m.startsWith("y: 2 of 4 elements"), m);
        assertTrue(m.contains("first at [1]"), m);
        assertTrue(m.contains("worst at [3] actual=9.0 expected=4.0"), m);
        assertTrue(m.contains("max abs error 5"), m);
    }

    @Test
    void toleranceSpecialValuesMatchOnlyThemselves() {
        assertThrows(AssertionFailedError.class,
                () -> Tolerance.assertClose("nan", new double[] {1}, new double[] {NAN}, 1, 1));
        assertThrows(AssertionFailedError.class,
                () -> Tolerance.assertClose("nan2", new double[] {NAN}, new double[] {1}, 1, 1));
        assertThrows(AssertionFailedError.class,
                () -> Tolerance.assertClose("inf", new double[] {-INF}, new double[] {INF}, 1, 1));
        assertThrows(AssertionFailedError.class,
                () -> Tolerance.assertClose("inf2", new double[] {INF}, new double[] {1e300}, 1, 1));
        assertThrows(AssertionFailedError.class,
                () -> Tolerance.assertClose("len", new double[] {1, 2}, new double[] {1}, 1, 1));
        AssertionFailedError e = assertThrows(AssertionFailedError.class,
                () -> Tolerance.assertClose("w", new double[] {1.5, NAN}, new double[] {1, 2}, 0, 0));
        assertTrue(e.getMessage().contains("worst at [1]"), e.getMessage());
    }

    @Test
    void maxAbsError() {
        assertEquals(0.5, Tolerance.maxAbsError(new float[] {1f, 2.5f}, new double[] {1, 2}), 0.0);
        assertEquals(0.0, Tolerance.maxAbsError(new double[] {NAN, INF}, new double[] {NAN, INF}), 0.0);
        assertEquals(INF, Tolerance.maxAbsError(new double[] {NAN, 1}, new double[] {0, 1}), 0.0);
        assertEquals(INF, Tolerance.maxAbsError(new double[] {0}, new double[] {NAN}), 0.0);
        assertEquals(0.0, Tolerance.maxAbsError(new double[0], new double[0]), 0.0);
        assertEquals(0.25, Tolerance.maxRelError(new double[] {5, 0}, new double[] {4, 0}), 0.0);
        assertEquals(7.0, Tolerance.maxAbsFinite(new double[] {-7, NAN, INF, 3}), 0.0);
    }

    // ---- TestNpy ------------------------------------------------------------------------------

    @Test
    void npyRoundTrip(@TempDir Path tmp) {
        float[] f = {1.5f, -0f, Float.NaN, Float.MIN_VALUE, 3e38f, -1f};
        TestNpy.writeFloat32(tmp.resolve("a.npy"), new long[] {2, 3}, f);
        TestNpy.Float32 r = TestNpy.readFloat32(tmp.resolve("a.npy"));
        assertArrayEquals(new long[] {2, 3}, r.shape());
        assertArrayEquals(f, r.data());
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(r.data()[1]));

        double[] d = {Math.PI, -1e-300};
        TestNpy.writeFloat64(tmp.resolve("b.npy"), new long[] {2}, d);
        assertArrayEquals(d, TestNpy.readFloat64(tmp.resolve("b.npy")).data());
        assertArrayEquals(new long[] {2}, TestNpy.readFloat64(tmp.resolve("b.npy")).shape());
        assertArrayEquals(new double[] {1.5, -0.0}, java.util.Arrays.copyOf(TestNpy.readAsFloat64(tmp.resolve("a.npy")).data(), 2));
        assertThrows(IllegalArgumentException.class, () -> TestNpy.readFloat64(tmp.resolve("a.npy")));
        assertThrows(IllegalArgumentException.class, () -> TestNpy.readFloat32(tmp.resolve("b.npy")));

        TestNpy.writeFloat32(tmp.resolve("s.npy"), new long[0], new float[] {7f});
        assertArrayEquals(new long[0], TestNpy.readFloat32(tmp.resolve("s.npy")).shape());
        TestNpy.writeFloat32(tmp.resolve("e.npy"), new long[] {0, 8}, new float[0]);
        assertArrayEquals(new long[] {0, 8}, TestNpy.readFloat32(tmp.resolve("e.npy")).shape());
    }

    @Test
    void npyHeaderIsAlignedAndRejectsBadFiles(@TempDir Path tmp) throws Exception {
        TestNpy.writeFloat32(tmp.resolve("a.npy"), new long[] {3}, new float[] {1, 2, 3});
        byte[] bytes = Files.readAllBytes(tmp.resolve("a.npy"));
        assertEquals(0, (bytes.length - 12) % 64); // header block is a multiple of 64 bytes
        String header = new String(bytes, 10, bytes.length - 22, java.nio.charset.StandardCharsets.ISO_8859_1);
        assertTrue(header.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"), header);
        Files.write(tmp.resolve("bad.npy"), new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
        assertThrows(IllegalArgumentException.class, () -> TestNpy.readFloat32(tmp.resolve("bad.npy")));
        Files.write(tmp.resolve("short.npy"), java.util.Arrays.copyOf(bytes, bytes.length - 4));
        assertThrows(IllegalArgumentException.class, () -> TestNpy.readFloat32(tmp.resolve("short.npy")));
    }

    @Test
    void npyReadsOnnxAndGoldenFiles() {
        TestNpy.Float32 x = TestNpy.readFloat32(TestData.onnx().resolve("test_mvn/input_0.npy"));
        assertArrayEquals(new long[] {3, 3, 3, 1}, x.shape());
        assertEquals(27, x.data().length);
        TestNpy.Float64 y = TestNpy.readFloat64(TestData.golden().resolve("ln_empty_batch/y.npy"));
        assertArrayEquals(new long[] {0, 8}, y.shape());
    }

    // ---- TestJson -----------------------------------------------------------------------------

    @Test
    void jsonParsesNestedValues() {
        Object v = TestJson.parse(" {\"a\": [1, -2.5e-3, true, false, null], \"s\": \"x\\\"y\\u00e9\\n\","
                + " \"o\": {\"k\": {}} , \"e\": []} ");
        Map<String, Object> m = TestJson.object(v);
        List<Object> a = TestJson.array(m.get("a"));
        assertEquals(1, TestJson.asInt(a.get(0)));
        assertEquals(-2.5e-3, TestJson.asDouble(a.get(1)), 0.0);
        assertEquals(Boolean.TRUE, a.get(2));
        assertNull(a.get(4));
        assertEquals("x\"y\u00e9\n", m.get("s"));
        assertTrue(TestJson.object(TestJson.path(v, "o", "k")).isEmpty());
        assertEquals(-2.5e-3, TestJson.asDouble(TestJson.path(v, "a", "1")), 0.0);
        assertNull(TestJson.path(v, "o", "missing"));
        assertTrue(TestJson.array(m.get("e")).isEmpty());
        assertEquals(List.of("a", "s", "o", "e"), List.copyOf(m.keySet())); // order kept
    }

    @Test
    void jsonFloatAttributesRoundOnceToFloat32() {
        assertEquals(1e-5f, TestJson.asFloat(TestJson.parse("1e-05")));
        assertEquals(0.9f, TestJson.asFloat(TestJson.parse("0.9")));
        assertArrayEquals(new int[] {0, 2, 3}, TestJson.asIntArray(TestJson.parse("[0, 2, 3]")));
        assertArrayEquals(new long[] {4, 5}, TestJson.asLongArray(TestJson.parse("[4,5]")));
        assertThrows(ArithmeticException.class, () -> TestJson.asInt(TestJson.parse("1.5")));
    }

    @Test
    void jsonRejectsMalformedInput() {
        for (String bad : new String[] {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "tru", "1 2", "\"abc",
                "{\"a\":1,\"a\":2}", "-", "01x"}) {
            assertThrows(IllegalArgumentException.class, () -> TestJson.parse(bad), bad);
        }
    }

    @Test
    void jsonReadsEveryOnnxCaseFile() {
        for (String name : TestData.caseNames(TestData.onnx())) {
            Map<String, Object> c = TestJson.parseObject(TestData.onnx().resolve(name).resolve("case.json"));
            assertEquals(name, c.get("name"));
        }
    }
}
