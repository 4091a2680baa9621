package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Hand-built malformed files: each must give an {@link NpyFormatException} naming the file and the problem. */
class NpyMalformedTest {
    /** How every unsupported-dtype message ends: the types the reader decodes. */
    static final String EXPECTED = "expected float32 ('<f4'), float16 ('<f2'), float64 ('<f8')"
            + " or bfloat16 bits ('<u2')";

    private static final String NOISE = "(),:'\"[]{}-+0123456789L.eTF \\\n";
    private static final String GOOD = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

    @TempDir
    Path dir;

    private NpyFormatException fails(byte[] bytes, String problem) {
        Path f = NpyFixtures.file(dir, "bad.npy", bytes);
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(f));
        assertEquals(f + ": " + problem, e.getMessage());
        assertEquals(problem, e.problem());
        return e;
    }

    /** For messages that quote the header: checks the start only. */
    private NpyFormatException failsStartingWith(byte[] bytes, String problemStart) {
        Path f = NpyFixtures.file(dir, "bad.npy", bytes);
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(f));
        assertTrue(e.getMessage().startsWith(f + ": " + problemStart), e.getMessage());
        return e;
    }

    private NpyArray reads(String header, int floats) {
        return Npy.read(NpyFixtures.file(dir, "ok.npy", NpyFixtures.npy(header, floats)));
    }

    // ---- magic and version --------------------------------------------------------------------

    @Test
    void emptyFile() {
        fails(new byte[0], "not a .npy file: missing \\x93NUMPY magic (the file is empty)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"x", "\u0093NUMP", "PK\u0003\u0004 zip", "\u0093numpy\u0001\u0000", "NUMPY\u0001\u0000xx"})
    void wrongMagic(String start) {
        fails(start.getBytes(StandardCharsets.ISO_8859_1), "not a .npy file: missing \\x93NUMPY magic");
    }

    @Test
    void textFileIsNotNpy() {
        fails("a,b,c\n1,2,3\n".getBytes(StandardCharsets.US_ASCII), "not a .npy file: missing \\x93NUMPY magic");
    }

    @Test
    void endsInsideVersion() {
        fails(Arrays.copyOf(NpyFixtures.npy(GOOD, 6), 7),
                "truncated header: the file ends after 7 bytes, inside the format version");
    }

    @ParameterizedTest
    @CsvSource({"0, 0", "4, 0", "1, 1", "2, 5", "255, 255"})
    void unsupportedVersion(int major, int minor) {
        byte[] b = NpyFixtures.npy(GOOD, 6);
        b[6] = (byte) major;
        b[7] = (byte) minor;
        fails(b, "unsupported .npy format version " + major + "." + minor + ": expected 1.0, 2.0 or 3.0");
    }

    @Test
    void endsInsideHeaderLength() {
        fails(Arrays.copyOf(NpyFixtures.npy(GOOD, 6), 9),
                "truncated header: the file ends after 9 bytes, inside the header length");
        fails(Arrays.copyOf(NpyFixtures.npy(2, GOOD, new byte[0]), 11),
                "truncated header: the file ends after 11 bytes, inside the header length");
    }

    @Test
    void headerLongerThanFile() {
        byte[] b = Arrays.copyOf(NpyFixtures.npy(GOOD, 6), 10 + 20);
        fails(b, "truncated header: the header length field says " + GOOD.length() + " bytes, but only 20 follow");
    }

    @Test
    void hugeVersion2HeaderLengthIsTruncation() {
        byte[] b = NpyFixtures.npy(2, GOOD, new byte[0]);
        b[8] = b[9] = b[10] = b[11] = (byte) 0xFF;
        fails(b, "truncated header: the header length field says 4294967295 bytes, but only "
                + GOOD.length() + " follow");
    }

    @Test
    void headerLengthAboveTheLimit() {
        String header = GOOD + " ".repeat(NpyReader.MAX_HEADER_BYTES);
        fails(NpyFixtures.npy(2, header, NpyFixtures.le(6)), "header length " + header.length()
                + " is larger than the " + NpyReader.MAX_HEADER_BYTES + " bytes this reader accepts: corrupt header length?");
    }

    /** {@code GOOD}, padded with spaces and ended by a newline to exactly {@code length} characters. */
    private static String padded(int length) {
        return GOOD + " ".repeat(length - GOOD.length() - 1) + "\n";
    }

    /** NumPy 2.4.6's np.load reads these files, headers of its default limit of 10000 characters. */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void headerAsLongAsNumPyReadsByDefault(int major) {
        NpyArray a = Npy.read(NpyFixtures.file(dir, "ok.npy", NpyFixtures.npy(major, padded(10_000), NpyFixtures.le(6))));
        assertArrayEquals(new long[] {2, 3}, a.shape());
        assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, a.data());
    }

    /** The documented limit, 1 MiB: version 2.0 and 3.0 headers up to it read, one byte more does not. */
    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void headerLengthLimitIsOneMebibyte(int major) {
        NpyArray a = Npy.read(NpyFixtures.file(dir, "ok.npy", NpyFixtures.npy(major, padded(1 << 20), NpyFixtures.le(6))));
        assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, a.data());
        fails(NpyFixtures.npy(major, padded((1 << 20) + 1), NpyFixtures.le(6)),
                "header length 1048577 is larger than the 1048576 bytes this reader accepts: corrupt header length?");
    }

    /**
     * A shape of one 1.6-million-digit integer once took 45 s to refuse: BigInteger parses in quadratic
     * time. Now the header length limit refuses it, and within that limit the digit limit.
     */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "1600000| header length 1600058 is larger than the 1048576 bytes this reader accepts: corrupt header length?",
        "1040000| header is not a Python dict literal: integer literal has 1040001 digits, more than the 40 accepted"
                + " at offset 51 in",
    })
    @Timeout(value = 10, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void hugeIntegerInShapeIsRefusedWithoutParsingIt(int zeros, String problemStart) {
        String header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1" + "0".repeat(zeros) + ",), }\n";
        failsStartingWith(NpyFixtures.npy(2, header, new byte[0]), problemStart);
    }

    @Test
    void invalidUtf8InVersion3Header() {
        byte[] b = NpyFixtures.npy(3, GOOD.replace("'<f4'", "'<f4\u00e9'"), NpyFixtures.le(6));
        int at = new String(b, StandardCharsets.ISO_8859_1).indexOf("<f4") + 3;
        b[at] = (byte) 0xC3;
        b[at + 1] = (byte) 0x28; // invalid continuation byte
        fails(b, "header is not valid UTF-8, as format version 3.0 requires");
    }

    // ---- header dict --------------------------------------------------------------------------

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "\"\"| unexpected end of text, expected a value at offset 0",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3),| unexpected end of text at offset 57",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}| expected ',', found character \"'\" at offset 16",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}| expected ',', found character 'f' at offset 17",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}}| unexpected character '}' after the end of the literal at offset 57",
        "{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}| unexpected name 'false', expected a literal at offset 34",
        "{descr: '<f4', 'fortran_order': False, 'shape': (2, 3)}| unexpected name 'descr', expected a literal at offset 1",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1.2.3)}| malformed number '1.2.3' at offset 54",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3e)}| malformed number '3e' at offset 54",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -)}| unexpected character ')', expected a number at offset 55",
        "{1: '<f4'}| dict key 1 is not a string at offset 1",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) @}| expected ',', found character '@' at offset 57",
        "{'descr': '<f\\x4', 'fortran_order': False, 'shape': (2, 3)}| invalid escape sequence in string at offset 16",
        "{'descr': '<f4'| unexpected end of text at offset 15",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (010,)}| integer literal '010' has a leading zero:"
                + " expected no leading zeros (Python 3 refuses them; Python 2 read them as octal) at offset 51",
    })
    void headerSyntaxErrors(String header, String problem) {
        failsStartingWith(NpyFixtures.npy(header, 6), "header is not a Python dict literal: " + problem + " in ");
    }

    @Test
    void integerOfMoreThan40DigitsIsASyntaxError() {
        failsStartingWith(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1"
                + "0".repeat(40) + ")}", 0), "header is not a Python dict literal: integer literal has 41 digits,"
                + " more than the 40 accepted at offset 54 in ");
    }

    @Test
    void newlineInsideString() {
        failsStartingWith(NpyFixtures.npy("{'descr': '<f4\n', 'fortran_order': False, 'shape': (2, 3)}", 6),
                "header is not a Python dict literal: unterminated string at offset 10 in ");
    }

    @ParameterizedTest
    @ValueSource(strings = {"['descr', '<f4']", "('descr', '<f4')", "'descr'", "None", "42"})
    void headerIsNotADict(String header) {
        fails(NpyFixtures.npy(header, 6), "header is not a Python dict literal: " + PyLiteral.repr(header));
    }

    @Test
    void deeplyNestedHeaderDoesNotOverflowTheStack() {
        String header = "{'descr': " + "[".repeat(100_000) + "]".repeat(100_000)
                + ", 'fortran_order': False, 'shape': (2, 3)}";
        failsStartingWith(NpyFixtures.npy(2, header, NpyFixtures.le(6)),
                "header is not a Python dict literal: containers nested deeper than 32 levels at offset 41 in ");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "{'fortran_order': False, 'shape': (2, 3)}| descr",
        "{'descr': '<f4', 'shape': (2, 3)}| fortran_order",
        "{'descr': '<f4', 'fortran_order': False}| shape",
        "{}| descr",
    })
    void missingKey(String header, String key) {
        failsStartingWith(NpyFixtures.npy(header, 6), "header is missing key '" + key
                + "': expected keys 'descr', 'fortran_order' and 'shape' in ");
    }

    @Test
    void unexpectedKey() {
        failsStartingWith(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", 6),
                "header has unexpected key 'x': expected only 'descr', 'fortran_order' and 'shape' in ");
    }

    @Test
    void fortranOrderTrueIsRefused() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", 6),
                "Fortran-order arrays are not supported: save with np.ascontiguousarray");
    }

    @ParameterizedTest
    @ValueSource(strings = {"1", "'False'", "None", "0"})
    void fortranOrderMustBeABool(String value) {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': " + value + ", 'shape': (2, 3)}", 6),
                "fortran_order is " + value + ", expected True or False");
    }

    // ---- shape --------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"[2, 3]", "6", "(6)", "'2, 3'", "None"})
    void shapeMustBeATuple(String shape) {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + "}", 6),
                "shape is " + (shape.equals("(6)") ? "6" : shape)
                        + ", expected a tuple of non-negative integers such as (2, 3)");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "(2, -3)| 1| -3| is negative",
        "(2, 3.)| 1| 3.| is not an integer",
        "(-1,)| 0| -1| is negative",
        "(2, 1.5)| 1| 1.5| is not an integer",
        "(2.0, 3)| 0| 2.0| is not an integer",
        "(2, '3')| 1| '3'| is not an integer",
        "(True, 3)| 0| True| is not an integer",
        "(None,)| 0| None| is not an integer",
        "((2,), 3)| 0| (2,)| is not an integer",
        "(2, 1e3)| 1| 1e3| is not an integer",
        "(9223372036854775808,)| 0| 9223372036854775808| is larger than 2^63 - 1",
        "(1000000000000000000000000000000000000000,)| 0| 1000000000000000000000000000000000000000| is larger than 2^63 - 1",
    })
    void badShapeEntry(String shape, int index, String entry, String problem) {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + "}", 6),
                "shape entry " + index + " " + entry + " " + problem + ": expected a non-negative integer in shape "
                        + PyLiteral.repr(parse(shape)));
    }

    private static Object parse(String literal) {
        try {
            return PyLiteral.parse(literal);
        } catch (PyLiteral.SyntaxError e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void shapeProductOverflows() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 0),
                "shape [4294967296, 4294967296] has more than 2^63 - 1 elements: corrupt header?");
    }

    @Test
    void byteCountOverflows() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,)}", 0),
                "shape [4611686018427387904] has 4611686018427387904 elements, too large for a Java array"
                        + " (at most 2147483639)");
    }

    @Test
    void tooLargeForAJavaArray() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483640,)}", 0),
                "shape [2147483640] has 2147483640 elements, too large for a Java array (at most 2147483639)");
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (50000, 50000)}", 0),
                "shape [50000, 50000] has 2500000000 elements, too large for a Java array (at most 2147483639)");
    }

    @Test
    void largestJavaArrayShapeGetsToTheDataCheck() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483639,)}", 1),
                "truncated: shape [2147483639] needs 8589934556 bytes of data, file has 4");
    }

    @Test
    void zeroSizeArrayWithData() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4)}", 1),
                "corrupt: shape [0, 4] needs 0 bytes of data, file has 4 (4 trailing bytes)");
    }

    @Test
    void scalarWithoutData() {
        fails(NpyFixtures.npy("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", 0),
                "truncated: shape [] needs 4 bytes of data, file has 0");
    }

    @Test
    void partialElement() {
        byte[] b = NpyFixtures.npy(GOOD, 6);
        fails(Arrays.copyOf(b, b.length - 1), "truncated: shape [2, 3] needs 24 bytes of data, file has 23");
    }

    // ---- descr --------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"<i4", "|u1", "<u4", "<i2", "|b1", "<c8", "<f16", "<U5", "|S3", "<M8[ns]", "|V8"})
    void otherDtypesAreUnsupported(String descr) {
        NpyUnsupportedDTypeException e = assertInstanceOf(NpyUnsupportedDTypeException.class,
                fails(NpyFixtures.npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2, 3)}", 6),
                        "dtype " + descr + " is not supported: " + EXPECTED));
        assertEquals(descr, e.descr());
    }

    @ParameterizedTest
    @ValueSource(strings = {"|O", "<O", "|O8", "O"})
    void objectDtypesAreRefused(String descr) {
        assertInstanceOf(NpyUnsupportedDTypeException.class,
                fails(NpyFixtures.npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (3,)}", 0),
                        "object arrays (dtype '" + descr + "') are not supported: their data is a pickle of Python"
                                + " objects; " + EXPECTED));
    }

    @Test
    void structuredDtypeIsRefused() {
        assertInstanceOf(NpyUnsupportedDTypeException.class, fails(NpyFixtures.npy(
                "{'descr': [('x', '<f4'), ('y', '<f4', (2,))], 'fortran_order': False, 'shape': (2,)}", 6),
                "structured dtype [('x', '<f4'), ('y', '<f4', (2,))] is not supported: " + EXPECTED));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "<", "f", "<f", "<x4", "float32", "<f4 ", "<f-4", "<f4[ns]"})
    void garbageDescr(String descr) {
        NpyFormatException e = fails(
                NpyFixtures.npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2, 3)}", 6),
                "descr " + PyLiteral.repr(descr) + " is not a NumPy dtype string: " + EXPECTED);
        assertEquals(NpyFormatException.class, e.getClass());
    }

    @ParameterizedTest
    @ValueSource(strings = {"4", "None", "('<f4',)", "{'a': 1}"})
    void descrOfTheWrongType(String descr) {
        fails(NpyFixtures.npy("{'descr': " + descr + ", 'fortran_order': False, 'shape': (2, 3)}", 6),
                "descr is not a dtype string: " + PyLiteral.repr(parse(descr)) + ", " + EXPECTED);
    }

    // ---- what must still be accepted ----------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3,),}",
        "  {'descr': u'<f4',\n 'fortran_order': False,\t'shape': (2L, 3L), }   \n",
        "{'descr': '|f4', 'fortran_order': False, 'shape': ( 2 , +3 )}",
        "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), 'descr': '<f4'}",
        "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2, 3)}",
    })
    void lenientHeaderSyntax(String header) {
        NpyArray a = reads(header, 6);
        assertArrayEquals(new long[] {2, 3}, a.shape());
        assertArrayEquals(new float[] {0, 1, 2, 3, 4, 5}, a.data());
    }

    @Test
    void oneTupleShape() {
        assertArrayEquals(new long[] {4}, reads("{'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", 4).shape());
    }

    @Test
    void fortranOrderFalseWithZeroSizeAndHugeOtherDimension() {
        NpyArray a = reads("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 9223372036854775807)}", 0);
        assertEquals(0, a.size());
    }

    // ---- I/O errors ---------------------------------------------------------------------------

    @Test
    void missingFile() {
        Path f = dir.resolve("nope.npy");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> Npy.read(f));
        assertEquals("cannot read " + f + ": no such file", e.getMessage());
        assertInstanceOf(NoSuchFileException.class, e.getCause());
    }

    @Test
    void directoryInsteadOfFile() {
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> Npy.read(dir));
        assertEquals("cannot read " + dir + ": is a directory", e.getMessage());
    }

    @Test
    void unreadableFile() throws Exception {
        Path f = NpyFixtures.file(dir, "locked.npy", NpyFixtures.npy(GOOD, 6));
        Assumptions.assumeTrue(Files.getFileStore(f).supportsFileAttributeView("posix"));
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("-w-------"));
        Assumptions.assumeFalse(Files.isReadable(f), "running as a user who can read anything (root)");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> Npy.read(f));
        assertEquals("cannot read " + f + ": permission denied", e.getMessage());
        assertInstanceOf(AccessDeniedException.class, e.getCause());
    }

    // ---- fuzz ---------------------------------------------------------------------------------

    /** Random corruption of a valid file gives a result or an NpyFormatException, nothing else. */
    @Test
    void corruptedFilesNeverThrowAnythingElse() {
        byte[] good = NpyFixtures.npy(GOOD + "    \n", 6);
        Random random = new Random(12345);
        Path f = dir.resolve("fuzz.npy");
        for (int i = 0; i < 3000; i++) {
            byte[] b = good.clone();
            int edits = 1 + random.nextInt(4);
            for (int k = 0; k < edits; k++) {
                int at = random.nextInt(b.length);
                b[at] = random.nextBoolean() ? (byte) random.nextInt(256) : (byte) NOISE.charAt(random.nextInt(NOISE.length()));
            }
            if (random.nextInt(4) == 0) {
                b = Arrays.copyOf(b, random.nextInt(b.length + 8));
            }
            NpyFixtures.file(dir, "fuzz.npy", b);
            try {
                Npy.read(f);
            } catch (NpyFormatException e) {
                assertTrue(e.getMessage().startsWith(f + ": "), e.getMessage());
            }
        }
    }
}
