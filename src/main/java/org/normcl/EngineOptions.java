package org.normcl;

/**
 * How {@link NormEngine#create(EngineOptions)} picks and configures a backend.
 *
 * <pre>{@code
 * EngineOptions.auto()                      // best OpenCL device, else Java
 * EngineOptions.opencl("0")                 // OpenCL device #0 (see NormEngine.devices())
 * EngineOptions.opencl("pocl")              // first device whose name or platform contains "pocl"
 * EngineOptions.java().withThreads(4)       // pure Java on 4 threads
 * }</pre>
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class EngineOptions {
    private final BackendKind backend;
    private final String device;
    private final int threads;

    private EngineOptions(BackendKind backend, String device, int threads) {
        this.backend = backend;
        this.device = device;
        this.threads = threads;
    }

    /** @return AUTO: the best OpenCL device, else the Java backend */
    public static EngineOptions auto() {
        return new EngineOptions(BackendKind.AUTO, null, 0);
    }

    /** @return the Java backend on all available processors */
    public static EngineOptions java() {
        return new EngineOptions(BackendKind.JAVA, null, 0);
    }

    /**
     * @param device a device index from {@link NormEngine#devices()}, or a case-insensitive part of
     *     a device or platform name; null for the best device
     * @return an explicit OpenCL engine, which fails rather than falls back
     */
    public static EngineOptions opencl(String device) {
        return new EngineOptions(BackendKind.OPENCL, device, 0);
    }

    /**
     * @param kind the backend kind
     * @return options for that kind with default settings
     */
    public static EngineOptions of(BackendKind kind) {
        if (kind == null) {
            throw new IllegalArgumentException("backend must not be null: expected AUTO, OPENCL or JAVA");
        }
        return new EngineOptions(kind, null, 0);
    }

    /**
     * @param device a device index or a part of a device or platform name; applies to OPENCL and AUTO
     * @return a copy selecting that device
     */
    public EngineOptions withDevice(String device) {
        return new EngineOptions(backend, device, threads);
    }

    /** The most threads a Java engine takes: the limit of {@link java.util.concurrent.ForkJoinPool}. */
    public static final int MAX_THREADS = 0x7fff;

    /**
     * @param threads threads for the Java backend, at most {@link #MAX_THREADS}; 0 means all
     *     available processors
     * @return a copy with that thread count
     * @throws IllegalArgumentException if {@code threads} is negative or above {@link #MAX_THREADS}
     */
    public EngineOptions withThreads(int threads) {
        if (threads < 0 || threads > MAX_THREADS) {
            throw new IllegalArgumentException("threads = " + threads + ": expected 0 (all processors) to "
                    + MAX_THREADS);
        }
        return new EngineOptions(backend, device, threads);
    }

    /** @return the backend kind */
    public BackendKind backend() {
        return backend;
    }

    /** @return the device selector, or null */
    public String device() {
        return device;
    }

    /** @return the Java thread count, or 0 for all available processors */
    public int threads() {
        return threads;
    }

    /** @return the thread count to use */
    int effectiveThreads() {
        return threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
    }

    @Override
    public String toString() {
        return "EngineOptions{backend=" + backend + (device != null ? ", device=" + device : "")
                + (threads > 0 ? ", threads=" + threads : "") + "}";
    }
}
