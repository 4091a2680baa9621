package org.normcl.opencl;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** Loads the kernel sources that Maven copies from {@code opencl/} into the jar. */
final class KernelSource {
    /** The files of the one program every engine builds, in the order they are concatenated. */
    static final String[] FILES = {"common.cl", "row_norm.cl", "channel_norm.cl", "backward.cl"};

    private static final String RESOURCE_DIR = "/org/normcl/opencl/kernels/";

    private KernelSource() {
    }

    /** @return the concatenated sources of {@link #FILES} */
    static String program() {
        StringBuilder sb = new StringBuilder();
        for (String f : FILES) {
            sb.append("/* ---- ").append(f).append(" ---- */\n").append(load(f)).append('\n');
        }
        return sb.toString();
    }

    static String load(String file) {
        try (InputStream in = KernelSource.class.getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) {
                throw new IllegalStateException("kernel source " + RESOURCE_DIR + file
                        + " is missing from the classpath (is the jar built with 'mvn package'?)");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read kernel source " + file, e);
        }
    }
}
