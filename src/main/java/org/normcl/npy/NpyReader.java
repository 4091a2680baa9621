package org.normcl.npy;

import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

import org.normcl.DType;

/**
 * An open {@code .npy} file whose header has been read and checked, positioned nowhere in
 * particular: the decoders read the data by absolute position. Dtype-independent; {@link #read}
 * decodes every supported element type after {@link #checkDataLength} and {@link #intCount}.
 */
final class NpyReader implements AutoCloseable {
    /**
     * Longest header accepted, in bytes after the header length field: 1 MiB (1048576).
     *
     * <p>NumPy's {@code np.load} refuses headers longer than 10000 characters by default
     * ({@code max_header_size} in {@code numpy.lib.format}, NumPy 1.23.5 and later), because the
     * time to parse a header can grow faster than its length; it reads longer ones only when told to
     * trust the file. This reader cannot use that default: format version 2.0 exists for headers
     * longer than the 65535 bytes that version 1.0 can hold, and {@code np.save} and
     * {@link NpyHeader#encode} write it for them (a structured dtype of many fields; a shape of more
     * than about 21800 dimensions). The limit is instead 16 times the version 1.0 maximum. With
     * integer literals bounded ({@link PyLiteral#MAX_INT_DIGITS}), parsing takes time linear in the
     * header's length: a header of this size, however crafted, parses in a fraction of a second and
     * tens of megabytes.
     */
    static final int MAX_HEADER_BYTES = 1 << 20;
    /** Largest Java array, as in {@link org.normcl.Shape#intSize()}. */
    static final int MAX_ARRAY = Integer.MAX_VALUE - 8;
    /** Bytes read per call when decoding data. */
    private static final int CHUNK = 1 << 20;

    private final Path file;
    private final FileChannel channel;
    private final long fileSize;
    private final NpyHeader header;

    private NpyReader(Path file, FileChannel channel, long fileSize, NpyHeader header) {
        this.file = file;
        this.channel = channel;
        this.fileSize = fileSize;
        this.header = header;
    }

    /**
     * Opens a file and reads its header.
     *
     * @param file the file
     * @return the reader; close it
     * @throws NpyFormatException if the file is not a {@code .npy} file or its header is malformed
     * @throws UncheckedIOException if the file cannot be read
     */
    static NpyReader open(Path file) {
        FileChannel ch = null;
        try {
            if (Files.isDirectory(file)) {
                throw new FileSystemException(file.toString(), null, "is a directory");
            }
            ch = FileChannel.open(file, StandardOpenOption.READ);
            NpyReader reader = new NpyReader(file, ch, ch.size(), readHeader(file, ch));
            ch = null;
            return reader;
        } catch (IOException e) {
            throw Npy.ioFailure("read", file, e);
        } finally {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException suppressed) {
                    // the exception in flight says more
                }
            }
        }
    }

    private static NpyHeader readHeader(Path file, FileChannel ch) throws IOException {
        long size = ch.size();
        ByteBuffer prefix = ByteBuffer.allocate((int) Math.min(12, size)).order(ByteOrder.LITTLE_ENDIAN);
        readFully(ch, prefix, 0);
        byte[] magic = NpyHeader.MAGIC;
        if (size < magic.length || !Arrays.equals(prefix.array(), 0, magic.length, magic, 0, magic.length)) {
            throw new NpyFormatException(file, "not a .npy file: missing \\x93NUMPY magic"
                    + (size == 0 ? " (the file is empty)" : ""));
        }
        if (size < 8) {
            throw new NpyFormatException(file, "truncated header: the file ends after " + size
                    + " bytes, inside the format version");
        }
        int major = prefix.get(6) & 0xFF;
        int minor = prefix.get(7) & 0xFF;
        if (major < 1 || major > 3 || minor != 0) {
            throw new NpyFormatException(file, "unsupported .npy format version " + major + "." + minor
                    + ": expected 1.0, 2.0 or 3.0");
        }
        int lenBytes = major == 1 ? 2 : 4;
        long start = 8 + lenBytes;
        if (size < start) {
            throw new NpyFormatException(file, "truncated header: the file ends after " + size
                    + " bytes, inside the header length");
        }
        long headerLen = major == 1 ? prefix.getShort(8) & 0xFFFFL : prefix.getInt(8) & 0xFFFFFFFFL;
        if (headerLen > size - start) {
            throw new NpyFormatException(file, "truncated header: the header length field says " + headerLen
                    + " bytes, but only " + (size - start) + " follow");
        }
        if (headerLen > MAX_HEADER_BYTES) {
            throw new NpyFormatException(file, "header length " + headerLen + " is larger than the "
                    + MAX_HEADER_BYTES + " bytes this reader accepts: corrupt header length?");
        }
        ByteBuffer bytes = ByteBuffer.allocate((int) headerLen);
        readFully(ch, bytes, start);
        String text;
        if (major == 3) {
            try {
                text = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(bytes.flip())
                        .toString();
            } catch (CharacterCodingException e) {
                throw new NpyFormatException(file, "header is not valid UTF-8, as format version 3.0 requires");
            }
        } else {
            text = new String(bytes.array(), StandardCharsets.ISO_8859_1);
        }
        return NpyHeader.parse(file, major, 0, text, start + headerLen);
    }

    /** @return the header */
    NpyHeader header() {
        return header;
    }

    /** @return the file */
    Path file() {
        return file;
    }

    /**
     * Checks that the element count fits in a Java array.
     *
     * @return the element count
     * @throws NpyFormatException if it does not
     */
    int intCount() {
        if (header.count() > MAX_ARRAY) {
            throw new NpyFormatException(file, "shape " + Arrays.toString(header.shape()) + " has " + header.count()
                    + " elements, too large for a Java array (at most " + MAX_ARRAY + ")");
        }
        return (int) header.count();
    }

    /**
     * Checks that the data after the header is exactly as long as the shape needs.
     *
     * @param itemSize bytes per element
     * @throws NpyFormatException if the data is shorter or longer
     */
    void checkDataLength(int itemSize) {
        long have = fileSize - header.dataOffset();
        long need;
        try {
            need = Math.multiplyExact(header.count(), itemSize);
        } catch (ArithmeticException e) {
            throw new NpyFormatException(file, "shape " + Arrays.toString(header.shape())
                    + " needs more than 2^63 - 1 bytes of data: corrupt header?");
        }
        if (have < need) {
            throw new NpyFormatException(file, "truncated: shape " + Arrays.toString(header.shape()) + " needs "
                    + need + " bytes of data, file has " + have);
        }
        if (have > need) {
            throw new NpyFormatException(file, "corrupt: shape " + Arrays.toString(header.shape()) + " needs "
                    + need + " bytes of data, file has " + have + " (" + (have - need) + " trailing bytes)");
        }
    }

    /**
     * Reads the data into the Java array that holds {@code dtype}: {@code float[]} for float32,
     * {@code double[]} for float64, {@code short[]} (the bit patterns, unchanged) for float16 and
     * bfloat16. Every bit pattern, NaN payloads included, is kept.
     *
     * @param dtype the element type
     * @param count the element count, from {@link #intCount}
     * @param order the byte order of the data
     * @return the array
     */
    Object read(DType dtype, int count, ByteOrder order) {
        int size = dtype.byteSize();
        Object out;
        switch (dtype) {
            case FLOAT32:
                out = new float[count];
                break;
            case FLOAT64:
                out = new double[count];
                break;
            default:
                out = new short[count];
        }
        ByteBuffer buf = ByteBuffer.allocateDirect((int) Math.min(CHUNK, Math.max(8L, (long) size * count)))
                .order(order);
        long pos = header.dataOffset();
        int done = 0;
        try {
            while (done < count) {
                int n = Math.min(count - done, buf.capacity() / size);
                buf.clear().limit(size * n);
                readFully(channel, buf, pos);
                buf.flip();
                switch (dtype) {
                    case FLOAT32:
                        buf.asFloatBuffer().get((float[]) out, done, n);
                        break;
                    case FLOAT64:
                        buf.asDoubleBuffer().get((double[]) out, done, n);
                        break;
                    default:
                        buf.asShortBuffer().get((short[]) out, done, n);
                }
                done += n;
                pos += (long) size * n;
            }
        } catch (IOException e) {
            throw Npy.ioFailure("read", file, e);
        }
        return out;
    }

    /** Reads until {@code buf} is full, starting at file position {@code pos}. */
    private static void readFully(FileChannel ch, ByteBuffer buf, long pos) throws IOException {
        long p = pos;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, p);
            if (n < 0) {
                throw new EOFException("the file got shorter while it was read");
            }
            p += n;
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw Npy.ioFailure("read", file, e);
        }
    }
}
