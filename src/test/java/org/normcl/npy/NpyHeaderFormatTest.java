package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The bytes {@link Npy#write} produces, checked against the format spec and against NumPy. */
class NpyHeaderFormatTest {
    @TempDir
    Path dir;

    private byte[] written(float[] data, long... shape) throws Exception {
        Path f = dir.resolve("x.npy");
        Npy.write(f, data, shape);
        return Files.readAllBytes(f);
    }

    @Test
    void firstBytesFollowTheSpec() throws Exception {
        byte[] b = written(NpyFixtures.values(6), 2, 3);
        // magic, version 1.0, little-endian uint16 header length
        assertArrayEquals(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0},
                Arrays.copyOf(b, 10));
        String header = new String(b, 10, 118, StandardCharsets.US_ASCII);
        assertEquals("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + " ".repeat(58) + "\n",
                header);
        assertEquals(128 + 24, b.length);
        ByteBuffer data = ByteBuffer.wrap(b, 128, 24).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : NpyFixtures.values(6)) {
            assertEquals(v, data.getFloat());
        }
    }

    @Test
    void oneDimensionalShapeIsAOneTuple() throws Exception {
        String header = new String(written(new float[3], 3), 10, 118, StandardCharsets.US_ASCII);
        assertTrue(header.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"), header);
    }

    @Test
    void scalarShapeIsTheEmptyTuple() throws Exception {
        String header = new String(written(new float[1]), 10, 118, StandardCharsets.US_ASCII);
        assertTrue(header.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (), }   "), header);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "0", "1", "5", "0,4", "2,3", "1,1,1,1,1,1,1,1", "123456789,0", "9223372036854775807,0",
        "0,9223372036854775807", "2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1"})
    void headerIsAlignedTo64Bytes(String dims) throws Exception {
        long[] shape = dims.isEmpty() ? new long[0] : Arrays.stream(dims.split(",")).mapToLong(Long::parseLong).toArray();
        long n = Arrays.stream(shape).reduce(1, (a, c) -> a * c);
        byte[] b = written(new float[(int) Math.min(n, 1 << 20)], shape);
        int headerLen = (b[8] & 0xFF) | (b[9] & 0xFF) << 8;
        assertEquals(0, (10 + headerLen) % 64, "magic + version + length + header");
        assertEquals('\n', b[10 + headerLen - 1], "header ends with a newline");
        assertEquals(10 + headerLen + 4 * n, b.length);
    }

    /** Files written by Java are byte-identical to NumPy's np.save of the same array. */
    @ParameterizedTest
    @CsvSource({"f4_2x3.npy, 2;3", "f4_5.npy, 5", "f4_2x3x4.npy, 2;3;4", "f4_0x4.npy, 0;4", "f4_scalar.npy, ''"})
    void sameBytesAsNumPy(String fixture, String dims) throws Exception {
        long[] shape = dims.isEmpty() ? new long[0] : Arrays.stream(dims.split(";")).mapToLong(Long::parseLong).toArray();
        float[] data = fixture.equals("f4_scalar.npy") ? new float[] {3.5f}
                : fixture.equals("f4_0x4.npy") ? new float[0]
                : NpyFixtures.values((int) Arrays.stream(shape).reduce(1, (a, c) -> a * c));
        assertArrayEquals(Files.readAllBytes(NpyFixtures.fixture(fixture)), written(data, shape));
    }

    @Test
    void hugeHeaderFallsBackToVersion2() throws Exception {
        long[] shape = new long[30_000];
        Arrays.fill(shape, 1);
        byte[] b = written(new float[] {7f}, shape);
        assertArrayEquals(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0}, Arrays.copyOf(b, 8));
        long headerLen = ByteBuffer.wrap(b, 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() & 0xFFFFFFFFL;
        assertTrue(headerLen > 65535, "header length " + headerLen);
        assertEquals(0, (12 + headerLen) % 64);
        assertEquals(12 + headerLen + 4, b.length);
        NpyArray a = Npy.read(dir.resolve("x.npy"));
        assertArrayEquals(shape, a.shape());
        assertArrayEquals(new float[] {7f}, a.data());
    }

    /** The writer refuses a header the reader would refuse, and writes the longest one it accepts. */
    @Test
    void widestWritableShapeReadsBack() throws Exception {
        // "(1, 1, ..., 1)": 3 bytes per dimension; find the largest rank whose header is written.
        int start = 349_600; // about 1048576 / 3: just past the 1 MiB limit
        int rank = start;
        while (true) {
            long[] shape = new long[rank];
            Arrays.fill(shape, 1);
            try {
                NpyHeader.encode("<f4", shape);
                break;
            } catch (IllegalArgumentException e) {
                rank--;
            }
        }
        assertTrue(rank < start, "the search starts past the limit");
        long[] tooWide = new long[rank + 1];
        Arrays.fill(tooWide, 1);
        Path refused = dir.resolve("refused.npy");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Npy.write(refused, new float[] {7f}, tooWide));
        assertTrue(e.getMessage().startsWith("shape has " + (rank + 1) + " dimensions, too many for a .npy header: it"
                + " would be "), e.getMessage());
        assertTrue(e.getMessage().endsWith(" bytes, more than the 1048576 that Npy.read accepts"), e.getMessage());
        assertFalse(Files.exists(refused));

        long[] shape = new long[rank];
        Arrays.fill(shape, 1);
        byte[] b = written(new float[] {7f}, shape);
        long headerLen = ByteBuffer.wrap(b, 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() & 0xFFFFFFFFL;
        assertTrue(headerLen > (1 << 20) - 64 - 3 && headerLen <= 1 << 20, "header length " + headerLen);
        NpyArray a = Npy.read(dir.resolve("x.npy"));
        assertArrayEquals(shape, a.shape());
        assertArrayEquals(new float[] {7f}, a.data());
    }

    @Test
    void headerJustUnderTheVersion1LimitStaysVersion1() throws Exception {
        // "(1, 1, ..., 1)": 3 bytes per dimension; find the largest rank that still fits in 1.0.
        int rank = 22_000;
        byte[] b;
        while (true) {
            long[] shape = new long[rank];
            Arrays.fill(shape, 1);
            b = NpyHeader.encode("<f4", shape);
            if (b[6] == 1) {
                break;
            }
            rank--;
        }
        int headerLen = (b[8] & 0xFF) | (b[9] & 0xFF) << 8;
        assertTrue(headerLen > 65535 - 64 - 3, "header length " + headerLen);
        assertEquals(0, (10 + headerLen) % 64);
        assertEquals(b.length, 10 + headerLen);
    }
}
