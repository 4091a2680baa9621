package org.normcl.opencl;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Optional;

import org.normcl.DeviceInfo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Compiled program binaries on disk, so a second process does not pay the OpenCL compiler.
 *
 * <p>An entry's name is the SHA-256 of everything that can change the binary: the platform and
 * its version, the device and its driver version, the kernel source and the build options. A
 * driver update or an edited kernel therefore misses instead of loading a stale binary. Entries
 * are written to a temporary file and moved into place, so a crash or a concurrent writer never
 * leaves a half-written binary under the final name, and carry the binary's length and SHA-256,
 * so a damaged entry is deleted before any driver sees it; a binary the driver still rejects is
 * deleted too, and the program is built from source.
 *
 * <p>The directory is, in order: the system property {@code normcl.cacheDir}, the environment
 * variable {@code NORMCL_CACHE_DIR}, {@code $XDG_CACHE_HOME/normcl}, {@code ~/.cache/normcl}. The
 * value {@code off} (either setting) disables the cache. Any I/O failure only logs and falls back
 * to compiling: the cache may make a start faster, never make it fail. Which drivers use it is
 * decided in {@link #forDevice}.
 */
final class ProgramCache {
    private static final Logger LOG = LoggerFactory.getLogger(ProgramCache.class);
    /** Bumped when the entry format or the key's ingredients change. */
    private static final String FORMAT = "normcl-program-v1";
    private static final byte[] MAGIC = FORMAT.getBytes(StandardCharsets.US_ASCII);
    private static final int DIGEST_BYTES = 32;

    private final Path dir;

    private ProgramCache(Path dir) {
        this.dir = dir;
    }

    /**
     * @param device the device the programs are for
     * @return the cache the settings name for this device, or empty when it is switched off or the
     *     driver is better left to itself: Oclgrind (a simulator checks what it compiles) and PoCL,
     *     which keeps its own kernel cache (~/.cache/pocl) and compiles every kernel of a program
     *     for every work-group size it might see when asked for the binary (measured here: 3.7 s
     *     added to a 1.0 s cold build, and no faster warm start than its own cache)
     */
    static Optional<ProgramCache> forDevice(DeviceInfo device) {
        String platform = device.platformName();
        if (platform.contains("Oclgrind") || platform.contains("Portable Computing Language")) {
            return Optional.empty();
        }
        return fromSettings();
    }

    /** @return the cache the settings name, or empty when it is switched off */
    private static Optional<ProgramCache> fromSettings() {
        return root().map(r -> new ProgramCache(r.resolve("programs")));
    }

    /**
     * @return NormCL's cache directory as the settings name it (programs/ and tuning/ live in
     *     it), or empty when it is switched off
     */
    static Optional<Path> root() {
        String setting = System.getProperty("normcl.cacheDir");
        if (setting == null || setting.isBlank()) {
            setting = System.getenv("NORMCL_CACHE_DIR");
        }
        if (setting != null && !setting.isBlank()) {
            return setting.trim().equalsIgnoreCase("off") ? Optional.empty() : Optional.of(Path.of(setting.trim()));
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return Optional.of(base.resolve("normcl"));
    }

    /** @return a cache in this directory (for tests) */
    static ProgramCache at(Path dir) {
        return new ProgramCache(dir);
    }

    /** @return the directory the entries live in */
    Path directory() {
        return dir;
    }

    /** @return the entry key of a program for this device, source and options */
    static String key(DeviceInfo device, String source, String options) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            for (String part : new String[] {FORMAT, device.platformName(), device.platformVersion(), device.name(),
                    device.vendor(), device.deviceVersion(), device.driverVersion(), options, source}) {
                byte[] b = part.getBytes(StandardCharsets.UTF_8);
                sha.update((byte) (b.length >>> 24));
                sha.update((byte) (b.length >>> 16));
                sha.update((byte) (b.length >>> 8));
                sha.update((byte) b.length);
                sha.update(b);
            }
            return HexFormat.of().formatHex(sha.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * @return the stored binary of this key, or empty on a miss or a damaged entry. The checksum
     *     matters: drivers trust binaries (PoCL aborts the process on a truncated one), so nothing
     *     reaches the driver that is not byte for byte what it produced.
     */
    Optional<byte[]> load(String key) {
        Path file = entry(key);
        try {
            if (!Files.isRegularFile(file)) {
                return Optional.empty();
            }
            byte[] all = Files.readAllBytes(file);
            int header = MAGIC.length + Long.BYTES + DIGEST_BYTES;
            if (all.length > header && Arrays.equals(all, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
                ByteBuffer b = ByteBuffer.wrap(all);
                long length = b.getLong(MAGIC.length);
                byte[] binary = Arrays.copyOfRange(all, header, all.length);
                if (length == binary.length && Arrays.equals(all, MAGIC.length + Long.BYTES, header, sha256(binary),
                        0, DIGEST_BYTES)) {
                    return Optional.of(binary);
                }
            }
            LOG.warn("program cache entry {} is damaged (truncated, overwritten or not NormCL's); removing it", file);
            discard(key);
            return Optional.empty();
        } catch (IOException e) {
            LOG.debug("program cache: cannot read {}: {}", file, e.toString());
            return Optional.empty();
        }
    }

    /** Stores a binary under this key: write a temporary file, then move it into place. */
    void store(String key, byte[] binary) {
        Path file = entry(key);
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            tmp = Files.createTempFile(dir, key.substring(0, 16), ".tmp");
            ByteBuffer all = ByteBuffer.allocate(MAGIC.length + Long.BYTES + DIGEST_BYTES + binary.length);
            all.put(MAGIC).putLong(binary.length).put(sha256(binary)).put(binary);
            Files.write(tmp, all.array());
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException | RuntimeException e) {
            LOG.debug("program cache: cannot write {} ({}); programs will be compiled each start", file,
                    e.toString());
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // best effort: a stray .tmp file is harmless and never read
                }
            }
        }
    }

    /** Removes an entry the driver rejected. */
    void discard(String key) {
        try {
            Files.deleteIfExists(entry(key));
        } catch (IOException e) {
            LOG.debug("program cache: cannot remove {}: {}", entry(key), e.toString());
        }
    }

    private Path entry(String key) {
        return dir.resolve(key.toLowerCase(Locale.ROOT) + ".bin");
    }
}
