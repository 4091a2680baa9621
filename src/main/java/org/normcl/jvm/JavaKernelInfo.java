package org.normcl.jvm;

/**
 * Which inner loops the Java backend runs on this JVM, for reports ({@code normcl bench}). Internal:
 * not part of the supported API.
 */
public final class JavaKernelInfo {
    private JavaKernelInfo() {
    }

    /**
     * @return {@code vector-N} (the Vector API, N float lanes: the JVM was started with
     *     {@code --add-modules jdk.incubator.vector}) or {@code scalar}
     */
    public static String kernels() {
        return RowKernels.best().name();
    }
}
