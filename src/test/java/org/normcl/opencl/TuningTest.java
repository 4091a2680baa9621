package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.DeviceInfo;
import org.normcl.testing.SystemProperties;

/**
 * The tuning file: defaults equal the untuned work sizes, a written file reads back, and a
 * malformed, out-of-range or foreign file, or {@code normcl.tuning=off}, gives the defaults
 * without an exception. Needs no OpenCL device: the device is a description.
 */
class TuningTest {
    @TempDir
    Path dir;

    private final String cacheDirBefore = System.getProperty("normcl.cacheDir");
    private final String tuningBefore = System.getProperty(Tuning.PROPERTY);

    private static final DeviceInfo CPU = device("pthread-skylake-avx512", "3.1+debian", "CPU", 16);
    private static final Tuning TUNED = new Tuning(4, 16, 8192, 2, 64);

    @AfterEach
    void restore() {
        SystemProperties.put("normcl.cacheDir", cacheDirBefore);
        SystemProperties.put(Tuning.PROPERTY, tuningBefore);
    }

    static DeviceInfo device(String name, String driver, String type, int vectorWidth) {
        return new DeviceInfo(0, "Portable Computing Language", "The pocl project", "OpenCL 3.0 PoCL", name,
                "GenuineIntel", type, "OpenCL 3.0 PoCL", driver, "OpenCL C 1.2 PoCL", 2, 2000, 1L << 33, 1L << 16,
                1L << 31, 4096, List.of(), false, true, vectorWidth, 0, vectorWidth / 2);
    }

    @Test
    void defaultsAreTheUntunedWorkSizes() {
        Tuning d = Tuning.defaults();
        assertEquals(new Tuning(Tuning.DEVICE_VECTOR_WIDTH, 64, 16 * 1024, 8, 256), d);
        assertEquals(16, d.resolvedFor(CPU).vectorWidth(), "AVX-512: the preferred width 16");
        assertEquals(8, d.resolvedFor(device("gpu", "1", "GPU", 1)).vectorWidth(), "a width of 1 gets 8");
        WorkSizing s = new WorkSizing(CPU, 4096, d);
        assertEquals(64, s.serialGroupSize(1 << 20));
        assertEquals(0, s.pipelinedRowsPerItem(1024, 16 * 1024 - 4));
        assertEquals(1024 / (8 * 2), s.pipelinedRowsPerItem(1024, 16 * 1024));
        assertEquals(256, s.groupSize(1024, 4));
    }

    /**
     * Short rows: blocks of whole vectors of rows, about 16 work-items per compute unit, rows up
     * to 4 KiB, never on the work-group family or under -Dnormcl.kernels=rowwise.
     */
    @Test
    void shortRowBlocks() {
        WorkSizing s = new WorkSizing(CPU, 4096, Tuning.defaults()); // 2 compute units, VW 16
        assertEquals(2097152 / 32, s.shortRowsPerItem(2097152, 16), "65536x128 in 32 groups");
        assertEquals(16, s.shortRowsPerItem(37, 4), "a block is at least one vector of rows");
        assertEquals(32, s.shortRowsPerItem(32 * 17, 4), "17 rows rounded up to a multiple of VW");
        assertEquals(0, s.shortRowsPerItem(1, 4));
        assertEquals(8192 / 32, s.shortRowsPerItem(8192, 4096));
        assertEquals(0, s.shortRowsPerItem(8192, 4100), "longer rows: one work-item each");
        assertEquals(56, new WorkSizing(CPU, 4096, TUNED.withVectorWidth(8)).shortRowsPerItem(1700, 4), "VW 8");
        try (SystemProperties p = SystemProperties.set(WorkSizing.STRATEGY_PROPERTY, "rowwise")) {
            assertEquals(0, new WorkSizing(CPU, 4096, Tuning.defaults()).shortRowsPerItem(2097152, 16));
        }
        try (SystemProperties p = SystemProperties.set(WorkSizing.STRATEGY_PROPERTY, "group")) {
            assertEquals(0, new WorkSizing(CPU, 4096, Tuning.defaults()).shortRowsPerItem(2097152, 16));
        }
    }

    @Test
    void tunedValuesReachTheWorkSizes() {
        WorkSizing s = new WorkSizing(CPU, 4096, TUNED);
        assertEquals(16, s.serialGroupSize(1 << 20));
        assertEquals(4, s.vectorWidth());
        assertEquals(0, s.pipelinedRowsPerItem(1024, 8192 - 4));
        assertEquals(1024 / (2 * 2), s.pipelinedRowsPerItem(1024, 8192));
        assertEquals(64, s.groupSize(1024, 4));
    }

    /** What bench reports as kernel_parameters is what the kernels take, overrides included. */
    @Test
    void reportedParametersAreTheOverriddenOnes() {
        assertEquals(TUNED, new WorkSizing(CPU, 4096, TUNED).tuning());
        assertEquals(16, new WorkSizing(CPU, 4096, Tuning.defaults()).tuning().vectorWidth(), "resolved");
        try (SystemProperties p = SystemProperties.set("normcl.vectorWidth", "8")
                .and(WorkSizing.STRATEGY_PROPERTY, "pipelined")) {
            WorkSizing s = new WorkSizing(CPU, 4096, TUNED);
            assertEquals(TUNED.withVectorWidth(8).withPipelineMinRowBytes(0), s.tuning());
            assertEquals(s.vectorWidth(), s.tuning().vectorWidth());
        }
    }

    @Test
    void aWrittenFileReadsBackAndLeavesNoTemporaryFile() throws IOException {
        Path file = Tuning.file(dir.resolve("tuning"), CPU);
        TUNED.write(file, CPU, "test");
        assertEquals(Optional.of(TUNED), Tuning.read(file, CPU));
        Tuning never = TUNED.withPipelineMinRowBytes(Tuning.NEVER);
        never.write(file, CPU, "second\nwrite");
        assertEquals(Optional.of(never), Tuning.read(file, CPU), "rewritten in place");
        assertEquals(List.of(file.getFileName().toString()), names(dir.resolve("tuning")));
    }

    @Test
    void engineCreationReadsTheDevicesFileFromTheCacheDirectory() throws IOException {
        System.setProperty("normcl.cacheDir", dir.toString());
        System.clearProperty(Tuning.PROPERTY);
        assertEquals(Tuning.defaults(), Tuning.forDevice(CPU), "no file: defaults");
        Path file = Tuning.file(dir.resolve("tuning"), CPU);
        assertEquals(dir.resolve("tuning"), Tuning.directory().orElseThrow());
        TUNED.write(file, CPU, "test");
        assertEquals(TUNED, Tuning.forDevice(CPU));
        System.setProperty(Tuning.PROPERTY, "off");
        assertEquals(Tuning.defaults(), Tuning.forDevice(CPU), "normcl.tuning=off ignores the file");
        Path elsewhere = dir.resolve("mine.properties");
        TUNED.withSerialGroupCap(128).write(elsewhere, CPU, "test");
        System.setProperty(Tuning.PROPERTY, elsewhere.toString());
        assertEquals(128, Tuning.forDevice(CPU).serialGroupCap(), "normcl.tuning=FILE reads that file");
        System.setProperty("normcl.cacheDir", "off");
        System.clearProperty(Tuning.PROPERTY);
        assertTrue(Tuning.directory().isEmpty());
        assertEquals(Tuning.defaults(), Tuning.forDevice(CPU), "no cache directory: defaults");
    }

    /** A device is tuned when its file is read, also when the tuner kept every default (probe and bench ask this). */
    @Test
    void aFileThatKeptTheDefaultsIsStored() throws IOException {
        System.setProperty("normcl.cacheDir", dir.toString());
        System.clearProperty(Tuning.PROPERTY);
        assertEquals(Optional.empty(), Tuning.stored(CPU), "no file");
        Tuning.defaults().write(Tuning.file(dir.resolve("tuning"), CPU), CPU, "test");
        assertEquals(Optional.of(Tuning.defaults()), Tuning.stored(CPU));
        assertEquals(Tuning.defaults(), Tuning.forDevice(CPU));
        System.setProperty(Tuning.PROPERTY, "off");
        assertEquals(Optional.empty(), Tuning.stored(CPU), "normcl.tuning=off");
    }

    @Test
    void eachDeviceDriverAndKernelSourceHasItsOwnFile() {
        Path a = Tuning.file(dir, CPU);
        assertTrue(!a.equals(Tuning.file(dir, device("pthread-skylake-avx512", "3.2", "CPU", 16))),
                "a driver update misses");
        assertTrue(!a.equals(Tuning.file(dir, device("pthread-zen4", "3.1+debian", "CPU", 16))), "another device");
        assertTrue(!Tuning.key(CPU).equals(ProgramCache.key(CPU, KernelSource.program(), "")),
                "never a program cache key");
    }

    @Test
    void malformedAndForeignFilesGiveTheDefaultsWithoutThrowing() throws IOException {
        Path file = Tuning.file(dir, CPU);
        TUNED.write(file, CPU, "test");
        String good = Files.readString(file);
        String[] bad = {
            "",
            "\u0000\u0001 not a properties file \\u12",
            good.replace("format=normcl-tuning-v1", "format=normcl-tuning-v0"),
            good.replace("vectorWidth=4", "vectorWidth=5"),
            good.replace("serialGroupCap=16", "serialGroupCap=24"),
            good.replace("maxGroupSize=64", "maxGroupSize=-64"),
            good.replace("pipelineItemsPerUnit=2", "pipelineItemsPerUnit=two"),
            good.replace("pipelineMinRowBytes=8192\n", ""),
            good.replace("driver=3.1+debian", "driver=3.0"),
            good.replace("device=pthread-skylake-avx512", "device=NVIDIA H100"),
            good.replaceAll("kernels=[0-9a-f]+", "kernels=0123"),
            good.substring(0, good.length() / 2),
        };
        System.setProperty(Tuning.PROPERTY, file.toString());
        for (String text : bad) {
            Files.writeString(file, text);
            assertEquals(Optional.empty(), Tuning.read(file, CPU), text);
            assertEquals(Tuning.defaults(), Tuning.forDevice(CPU), text);
        }
        Files.delete(file);
        assertEquals(Optional.empty(), Tuning.read(file, CPU), "a missing file");
        assertEquals(Tuning.defaults(), Tuning.forDevice(CPU), "a missing file named by normcl.tuning");
        TUNED.write(file, CPU, "test");
        assertEquals(Optional.empty(), Tuning.read(file, device("pthread-skylake-avx512", "3.2", "CPU", 16)),
                "written for another driver");
    }

    @Test
    void outOfRangeValuesAreRejectedWhereTheyAreMade() {
        assertThrows(IllegalArgumentException.class, () -> new Tuning(32, 64, 0, 8, 256));
        assertThrows(IllegalArgumentException.class, () -> new Tuning(0, 48, 0, 8, 256));
        assertThrows(IllegalArgumentException.class, () -> new Tuning(0, 64, -1, 8, 256));
        assertThrows(IllegalArgumentException.class, () -> new Tuning(0, 64, 0, 0, 256));
        assertThrows(IllegalArgumentException.class, () -> new Tuning(0, 64, 0, 8, 2048));
    }

    private static List<String> names(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
