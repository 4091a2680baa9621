package org.normcl.testing;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * System properties set for the length of a try-with-resources block, the previous values (or
 * their absence) put back on close. Tests that change a property the library reads at call time
 * ({@code normcl.tuning}, {@code normcl.cacheDir}, {@code normcl.transfers}, ...) use it so that
 * the next test sees the JVM as it was. The test JVM runs test classes one at a time.
 */
public final class SystemProperties implements AutoCloseable {
    private final Map<String, String> before = new LinkedHashMap<>();

    private SystemProperties() {
    }

    /**
     * @param key the property
     * @param value its value for the block, or null to clear it
     * @return the handle whose {@link #close()} restores it
     */
    public static SystemProperties set(String key, String value) {
        return new SystemProperties().and(key, value);
    }

    /**
     * @param key another property
     * @param value its value for the block, or null to clear it
     * @return this handle, which restores it too
     */
    public SystemProperties and(String key, String value) {
        before.putIfAbsent(key, System.getProperty(key));
        put(key, value);
        return this;
    }

    /** Sets {@code key} to {@code value}, or clears it where {@code value} is null. */
    public static void put(String key, String value) {
        if (value == null) {
            System.clearProperty(key);
        } else {
            System.setProperty(key, value);
        }
    }

    @Override
    public void close() {
        before.forEach(SystemProperties::put);
    }
}
