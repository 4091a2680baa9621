package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The on-disk program cache: a second backend loads the binary the first one stored and computes
 * the same bits; a damaged, foreign or unwritable cache only costs a compile.
 */
class ProgramCacheTest {
    @TempDir
    Path dir;

    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator(); // Oclgrind never uses the cache
    }

    @Test
    void secondBackendLoadsTheStoredBinaryAndComputesTheSameBits() throws IOException {
        ProgramCache cache = ProgramCache.at(dir);
        float[] cold;
        try (ClBackend be = open(cache)) {
            assertEquals(0, be.programsFromCache());
            cold = layerNorm(be);
        }
        assertEquals(1, entries().size(), "one entry for the float32 program");
        float[] warm;
        try (ClBackend be = open(cache)) {
            assertEquals(1, be.programsFromCache(), "the float32 program comes from the cache");
            warm = layerNorm(be);
        }
        assertArrayEquals(cold, warm);
        assertEquals(1, entries().size());
    }

    @Test
    void eachTypeAndOptionSetHasItsOwnEntry() throws IOException {
        try (ClBackend be = open(ProgramCache.at(dir))) {
            layerNorm(be, DType.BFLOAT16);
        }
        assertEquals(2, entries().size(), "float32 and bfloat16 programs");
        String a = ProgramCache.key(device, "src", "-D A");
        assertNotEquals(a, ProgramCache.key(device, "src", "-D B"));
        assertNotEquals(a, ProgramCache.key(device, "src2", "-D A"));
        assertNotEquals(a, ProgramCache.key(copy(device, device.platformName(), device.driverVersion() + ".1"), "src",
                "-D A"), "a driver update misses the cache");
    }

    @Test
    void policyUsesTheCacheWhereTheDriverHasNoneOfItsOwn() {
        assertTrue(ProgramCache.forDevice(withPlatform(device, "Portable Computing Language")).isEmpty());
        assertTrue(ProgramCache.forDevice(withPlatform(device, "Oclgrind")).isEmpty());
        DeviceInfo gpu = withPlatform(device, "NVIDIA CUDA");
        String before = System.getProperty("normcl.cacheDir");
        try {
            System.setProperty("normcl.cacheDir", dir.toString());
            assertEquals(dir.resolve("programs"), ProgramCache.forDevice(gpu).orElseThrow().directory());
            System.setProperty("normcl.cacheDir", "OFF");
            assertTrue(ProgramCache.forDevice(gpu).isEmpty(), "off switches it off");
        } finally {
            if (before == null) {
                System.clearProperty("normcl.cacheDir");
            } else {
                System.setProperty("normcl.cacheDir", before);
            }
        }
    }

    @Test
    void damagedEntriesAreReplacedNotTrusted() throws IOException {
        ProgramCache cache = ProgramCache.at(dir);
        float[] expected;
        try (ClBackend be = open(cache)) {
            expected = layerNorm(be);
        }
        Path entry = entries().get(0);
        byte[] good = Files.readAllBytes(entry);
        byte[][] damaged = {
            new byte[0],                                   // empty file
            "not a binary".getBytes(),                     // foreign file without the header
            java.util.Arrays.copyOf(good, good.length / 2),  // truncated: PoCL aborts on this if it gets it
            flipLastByte(good),                              // one bit of rot in the binary
        };
        for (byte[] bad : damaged) {
            Files.write(entry, bad);
            try (ClBackend be = open(cache)) {
                assertEquals(0, be.programsFromCache(), "a damaged entry is not used");
                assertArrayEquals(expected, layerNorm(be));
            }
            assertEquals(good.length, Files.size(entry), "the entry is rewritten from a fresh build");
        }
    }

    @Test
    void anUnwritableCacheOnlyCostsACompile() throws IOException {
        Path blocker = dir.resolve("file");
        Files.writeString(blocker, "a file where the cache directory should be");
        try (ClBackend be = open(ProgramCache.at(blocker.resolve("programs")))) {
            assertEquals(0, be.programsFromCache());
            assertEquals(8 * 64, layerNorm(be).length);
        }
    }

    private static byte[] flipLastByte(byte[] b) {
        byte[] c = b.clone();
        c[c.length - 1] ^= 0x40;
        return c;
    }

    private static DeviceInfo withPlatform(DeviceInfo d, String platform) {
        return copy(d, platform, d.driverVersion());
    }

    private static DeviceInfo copy(DeviceInfo d, String platform, String driver) {
        return new DeviceInfo(d.index(), platform, d.platformVendor(), d.platformVersion(), d.name(), d.vendor(),
                d.type(), d.deviceVersion(), driver, d.openclCVersion(), d.computeUnits(), d.maxClockMHz(),
                d.globalMemBytes(), d.localMemBytes(), d.maxAllocBytes(), d.maxWorkGroupSize(), d.extensions(), d.fp16(),
                d.fp64(), d.preferredVectorWidthFloat(), d.preferredVectorWidthHalf(), d.preferredVectorWidthDouble());
    }

    private ClBackend open(ProgramCache cache) {
        return ClRuntime.open(Integer.toString(device.index()), Optional.of(cache));
    }

    private List<Path> entries() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".bin")).sorted().toList();
        }
    }

    private static float[] layerNorm(ClBackend be) {
        return layerNorm(be, DType.FLOAT32);
    }

    /** A layer norm over 8 rows of 64 through the backend SPI, read back as floats. */
    private static float[] layerNorm(ClBackend be, DType type) {
        int rows = 8;
        int len = 64;
        float[] x = new float[rows * len];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.37) * 3 + i % 5;
        }
        org.normcl.HostTensor host = org.normcl.HostTensor.convert(x, type, rows, len);
        RowNormPlan plan = RowNormPlan.contiguous(rows, len, StatMode.MEAN_VAR, 1e-5f, 1, 1, len, false, false);
        try (Buffer in = be.allocate(type, x.length); Buffer out = be.allocate(type, x.length)) {
            be.write(in, host);
            be.rowNorm(plan, in, null, null, out, null, null);
            float[] f = be.read(out, host.shape()).toFloats();
            assertEquals(x.length, f.length);
            return f;
        }
    }
}
