package org.normcl.opencl;

import java.io.IOException;
import java.io.Reader;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;

import org.normcl.DeviceInfo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The launch parameters of the OpenCL kernels that {@code normcl tune} measures per device, and
 * their file: one per device, driver and kernel source, as CLBlast keeps its tuning per device.
 *
 * <p>{@link #defaults()} are the choices {@link WorkSizing} made before tuning existed, so a
 * device without a tuning file behaves as before. The parameters:
 *
 * <ul>
 *   <li>{@code vectorWidth}: the width of the kernels' contiguous loops (the {@code VW} build
 *       option: 4, 8 or 16; 0 takes the device's preferred float width, clamped to 4..16);
 *   <li>{@code serialGroupCap}: the largest work-group of the one-work-item-per-row kernels (CPU
 *       drivers), a power of two;
 *   <li>{@code pipelineMinRowBytes}: the row size from which layer and RMS norm rows take the
 *       pipelined kernel on CPU drivers ({@link Long#MAX_VALUE}: never);
 *   <li>{@code pipelineItemsPerUnit}: work-items per compute unit of that pipelined kernel (fewer
 *       work-items: longer blocks of rows each);
 *   <li>{@code maxGroupSize}: the largest work-group of the work-group kernels (GPUs), a power of
 *       two; the device, the kernel and local memory may lower it further.
 * </ul>
 *
 * <p>The file lives in {@code tuning/} under the directory of the program cache (see
 * {@link ProgramCache}: {@code normcl.cacheDir}, {@code NORMCL_CACHE_DIR}, then
 * {@code $XDG_CACHE_HOME/normcl} or {@code ~/.cache/normcl}), named by the SHA-256 of the
 * platform, device, vendor, driver version and kernel source; a driver update or an edited
 * kernel therefore misses instead of applying parameters measured on something else. The file
 * repeats those fields, so one copied from another machine or pointed at by
 * {@code normcl.tuning} is recognized as foreign and ignored. A missing, malformed or foreign
 * file only logs: the defaults apply, and creating an engine never fails because of tuning.
 *
 * <p>The system property {@code normcl.tuning} (or the environment variable
 * {@code NORMCL_TUNING}) chooses: unset or {@code auto} reads the device's file if there is one,
 * {@code off} ignores it (reproducible runs and tests), anything else is the path of a file to
 * read instead.
 *
 * @param vectorWidth loop vector width: 4, 8 or 16, or 0 for the device's preferred width
 * @param serialGroupCap largest work-group of the one-work-item-per-row kernels (power of two, 1..1024)
 * @param pipelineMinRowBytes row bytes from which the pipelined row kernel is used (0..Long.MAX_VALUE)
 * @param pipelineItemsPerUnit work-items per compute unit of the pipelined row kernel (1..1024)
 * @param maxGroupSize largest work-group of the work-group kernels (power of two, 1..1024)
 */
public record Tuning(int vectorWidth, int serialGroupCap, long pipelineMinRowBytes, int pipelineItemsPerUnit,
        int maxGroupSize) {
    private static final Logger LOG = LoggerFactory.getLogger(Tuning.class);

    /** Bumped when the file's fields or the key's ingredients change. */
    static final String FORMAT = "normcl-tuning-v1";
    /** System property that switches tuning files off or names one; see the class comment. */
    public static final String PROPERTY = "normcl.tuning";
    /** Environment variable read when {@link #PROPERTY} is unset. */
    public static final String ENV = "NORMCL_TUNING";
    /** {@code vectorWidth} value that takes the device's preferred float width. */
    public static final int DEVICE_VECTOR_WIDTH = 0;
    /** {@code pipelineMinRowBytes} value that never pipelines. */
    public static final long NEVER = Long.MAX_VALUE;

    /**
     * Validates the ranges the kernels and launch code accept.
     *
     * @param vectorWidth 4, 8 or 16, or {@link #DEVICE_VECTOR_WIDTH}
     * @param serialGroupCap a power of two in 1..1024
     * @param pipelineMinRowBytes 0 or more ({@link #NEVER}: never pipeline)
     * @param pipelineItemsPerUnit 1..1024
     * @param maxGroupSize a power of two in 1..1024
     * @throws IllegalArgumentException for a value out of range
     */
    public Tuning {
        if (vectorWidth != DEVICE_VECTOR_WIDTH && vectorWidth != 4 && vectorWidth != 8 && vectorWidth != 16) {
            throw new IllegalArgumentException("vectorWidth = " + vectorWidth + ": expected 4, 8, 16 or 0 (device)");
        }
        checkPowerOfTwo("serialGroupCap", serialGroupCap);
        checkPowerOfTwo("maxGroupSize", maxGroupSize);
        if (pipelineMinRowBytes < 0) {
            throw new IllegalArgumentException("pipelineMinRowBytes = " + pipelineMinRowBytes + ": expected >= 0");
        }
        if (pipelineItemsPerUnit < 1 || pipelineItemsPerUnit > 1024) {
            throw new IllegalArgumentException("pipelineItemsPerUnit = " + pipelineItemsPerUnit
                    + ": expected 1..1024");
        }
    }

    private static void checkPowerOfTwo(String name, int v) {
        if (v < 1 || v > 1024 || Integer.bitCount(v) != 1) {
            throw new IllegalArgumentException(name + " = " + v + ": expected a power of two in 1..1024");
        }
    }

    /** @return the parameters NormCL uses without a tuning file */
    public static Tuning defaults() {
        return new Tuning(DEVICE_VECTOR_WIDTH, WorkSizing.SERIAL_GROUP_CAP, WorkSizing.PIPELINE_MIN_ROW_BYTES,
                WorkSizing.PIPELINE_ITEMS_PER_UNIT, WorkSizing.MAX_GROUP);
    }

    /**
     * @param device the device the parameters are for
     * @return these parameters with {@code vectorWidth} resolved to the width the device gets
     */
    public Tuning resolvedFor(DeviceInfo device) {
        return withVectorWidth(vectorWidth != DEVICE_VECTOR_WIDTH ? vectorWidth
                : WorkSizing.preferredVectorWidth(device));
    }

    /**
     * @param w the vector width
     * @return a copy with that vector width
     */
    public Tuning withVectorWidth(int w) {
        return new Tuning(w, serialGroupCap, pipelineMinRowBytes, pipelineItemsPerUnit, maxGroupSize);
    }

    /**
     * @param cap the group cap
     * @return a copy with that serial work-group cap
     */
    public Tuning withSerialGroupCap(int cap) {
        return new Tuning(vectorWidth, cap, pipelineMinRowBytes, pipelineItemsPerUnit, maxGroupSize);
    }

    /**
     * @param bytes the threshold
     * @return a copy with that pipelining threshold
     */
    public Tuning withPipelineMinRowBytes(long bytes) {
        return new Tuning(vectorWidth, serialGroupCap, bytes, pipelineItemsPerUnit, maxGroupSize);
    }

    /**
     * @param items work-items per compute unit
     * @return a copy with that pipelined kernel sizing
     */
    public Tuning withPipelineItemsPerUnit(int items) {
        return new Tuning(vectorWidth, serialGroupCap, pipelineMinRowBytes, items, maxGroupSize);
    }

    /**
     * @param size the group cap
     * @return a copy with that work-group cap
     */
    public Tuning withMaxGroupSize(int size) {
        return new Tuning(vectorWidth, serialGroupCap, pipelineMinRowBytes, pipelineItemsPerUnit, size);
    }

    // ------------------------------------------------------------------ the file

    /**
     * @return the directory tuning files live in ({@code tuning/} beside the program cache's
     *     {@code programs/}), or empty when the cache directory is switched off
     */
    public static Optional<Path> directory() {
        return ProgramCache.root().map(r -> r.resolve("tuning"));
    }

    /**
     * @param dir a tuning directory
     * @param device a device
     * @return the file of this device's, driver's and kernel source's tuning in {@code dir}
     */
    public static Path file(Path dir, DeviceInfo device) {
        return dir.resolve(key(device) + ".properties");
    }

    /** @return the SHA-256 over the format, platform, device, vendor, driver and kernel source */
    static String key(DeviceInfo device) {
        return ProgramCache.key(device, KernelSource.program(), FORMAT);
    }

    /** @return the SHA-256 of the kernel source (the key's ingredient the file repeats) */
    static String kernelHash() {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(KernelSource.program().getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * The tuning an engine on this device uses: the file {@code normcl.tuning} names, else the
     * device's file in {@link #directory()}, else {@link #defaults()} (also when
     * {@code normcl.tuning=off}, or the file is malformed or foreign, which logs a warning).
     *
     * @param device the device
     * @return the parameters to use
     */
    public static Tuning forDevice(DeviceInfo device) {
        return stored(device).orElse(defaults());
    }

    /**
     * The tuning file's parameters for this device, as {@link #forDevice} finds them: empty where
     * it takes the defaults (no file, {@code normcl.tuning=off}, no cache directory, or a file
     * that is malformed or foreign, which logs a warning). Whether a device was tuned is whether
     * this is present, not whether the values differ from the defaults: a file in which
     * {@code normcl tune} kept every default is a tuned device.
     *
     * @param device the device
     * @return the stored parameters, or empty
     */
    public static Optional<Tuning> stored(DeviceInfo device) {
        String setting = System.getProperty(PROPERTY);
        if (setting == null || setting.isBlank()) {
            setting = System.getenv(ENV);
        }
        setting = setting == null ? "auto" : setting.trim();
        if (setting.equalsIgnoreCase("off")) {
            LOG.debug("kernel tuning is off ({}=off): defaults on {}", PROPERTY, device.name());
            return Optional.empty();
        }
        Path file;
        if (setting.isEmpty() || setting.equalsIgnoreCase("auto")) {
            Optional<Path> dir = directory();
            if (dir.isEmpty()) {
                return Optional.empty();
            }
            file = file(dir.get(), device);
            if (!Files.isRegularFile(file)) {
                LOG.debug("no kernel tuning for {} ({}): defaults; 'normcl tune' measures one", device.name(), file);
                return Optional.empty();
            }
        } else {
            file = Path.of(setting);
        }
        Optional<Tuning> t = read(file, device);
        t.ifPresent(v -> LOG.info("kernel tuning for {} from {}: {}", device.name(), file, v));
        return t;
    }

    /**
     * Reads a tuning file. Never throws: a file that cannot be read, is malformed, holds values
     * out of range or was written for another device, driver or kernel source logs a warning and
     * gives empty.
     *
     * @param file the file
     * @param device the device it must be for
     * @return its parameters, or empty
     */
    public static Optional<Tuning> read(Path file, DeviceInfo device) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            LOG.warn("kernel tuning file {} cannot be read ({}); using the defaults", file, e.toString());
            return Optional.empty();
        }
        Properties p = new Properties();
        try (Reader r = new StringReader(text)) {
            p.load(r);
        } catch (IOException | RuntimeException e) {
            LOG.warn("kernel tuning file {} is malformed ({}); using the defaults", file, e.getMessage());
            return Optional.empty();
        }
        if (!FORMAT.equals(p.getProperty("format"))) {
            LOG.warn("kernel tuning file {} is not a {} file; using the defaults", file, FORMAT);
            return Optional.empty();
        }
        String[][] identity = identity(device);
        for (String[] field : identity) {
            if (!field[1].equals(p.getProperty(field[0]))) {
                LOG.warn("kernel tuning file {} was measured elsewhere: its {} is '{}', here '{}'; using the"
                        + " defaults (run 'normcl tune' again)", file, field[0], p.getProperty(field[0]), field[1]);
                return Optional.empty();
            }
        }
        try {
            return Optional.of(new Tuning(Integer.parseInt(required(p, "vectorWidth")),
                    Integer.parseInt(required(p, "serialGroupCap")), parseBytes(required(p, "pipelineMinRowBytes")),
                    Integer.parseInt(required(p, "pipelineItemsPerUnit")),
                    Integer.parseInt(required(p, "maxGroupSize"))));
        } catch (IllegalArgumentException e) {
            LOG.warn("kernel tuning file {} is malformed ({}); using the defaults", file, e.getMessage());
            return Optional.empty();
        }
    }

    private static String required(Properties p, String name) {
        String v = p.getProperty(name);
        if (v == null) {
            throw new IllegalArgumentException("no " + name);
        }
        return v.trim();
    }

    private static long parseBytes(String v) {
        return v.equalsIgnoreCase("never") ? NEVER : Long.parseLong(v);
    }

    /** @return (field, value) pairs that say which device, driver and kernels a file is for */
    private static String[][] identity(DeviceInfo d) {
        return new String[][] {{"platform", d.platformName()}, {"platformVersion", d.platformVersion()},
            {"device", d.name()}, {"vendor", d.vendor()}, {"deviceVersion", d.deviceVersion()},
            {"driver", d.driverVersion()}, {"kernels", kernelHash()}};
    }

    /**
     * Writes this tuning for a device: to a temporary file in the same directory, then moved over
     * {@code file}, so a reader never sees half a file and a crash leaves at most a stray
     * {@code .tmp} file (never read).
     *
     * @param file the target (usually {@link #file(Path, DeviceInfo)})
     * @param device the device the parameters were measured on
     * @param comment a line for the file's header (what measured it, when)
     * @throws IOException if the directory or the file cannot be written
     */
    public void write(Path file, DeviceInfo device, String comment) throws IOException {
        String content = text(device, comment);
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + file.getFileName(), ".tmp");
        try {
            Files.writeString(tmp, content, StandardCharsets.UTF_8);
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * The content of the file {@link #write} writes, for a caller that writes it itself (the
     * {@code tune} command, with its other output files, all or nothing).
     *
     * @param device the device the parameters were measured on
     * @param comment a line for the file's header (what measured it, when)
     * @return the file's text, lines ending in {@code \n}, to be encoded as UTF-8
     */
    public String text(DeviceInfo device, String comment) {
        StringBuilder sb = new StringBuilder();
        sb.append("# NormCL kernel tuning. ").append(comment.replace('\n', ' ')).append('\n');
        sb.append("# Ignored when any field above the parameters differs from the device in use.\n");
        sb.append("format=").append(FORMAT).append('\n');
        for (String[] field : identity(device)) {
            sb.append(field[0]).append('=').append(escape(field[1])).append('\n');
        }
        parameters().forEach((k, v) -> sb.append(k).append('=').append(v).append('\n'));
        return sb.toString();
    }

    /** @return {@code s} escaped as a properties value (Properties.load reads it back unchanged) */
    private static String escape(String s) {
        Properties p = new Properties();
        p.setProperty("k", s);
        StringBuilder sb = new StringBuilder();
        try (java.io.StringWriter w = new java.io.StringWriter()) {
            p.store(w, null);
            for (String line : w.toString().split("\n")) {
                if (line.startsWith("k=")) {
                    sb.append(line.substring(2).replace("\r", ""));
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return sb.toString();
    }

    /**
     * @return the parameters by name, in declaration order, as the file writes them ({@code never}
     *     for {@link #NEVER})
     */
    public Map<String, String> parameters() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("vectorWidth", Integer.toString(vectorWidth));
        m.put("serialGroupCap", Integer.toString(serialGroupCap));
        m.put("pipelineMinRowBytes", pipelineMinRowBytes == NEVER ? "never" : Long.toString(pipelineMinRowBytes));
        m.put("pipelineItemsPerUnit", Integer.toString(pipelineItemsPerUnit));
        m.put("maxGroupSize", Integer.toString(maxGroupSize));
        return m;
    }

    /** @return the parameters as {@code name=value} pairs, for logs and reports */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        parameters().forEach((k, v) -> sb.append(sb.length() == 0 ? "" : " ").append(k).append('=')
                .append(k.equals("vectorWidth") && vectorWidth == DEVICE_VECTOR_WIDTH ? "device" : v));
        return sb.toString();
    }
}
