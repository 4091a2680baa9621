package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

/** What {@link Main} says itself: an exhausted heap. */
class MainCliTest {
    /** The suggested -Xmx is more than the heap that ran out (whole GiB, as java reads "-Xmx2g"). */
    @Test
    void outOfMemorySuggestsALargerHeap() {
        for (long max : new long[] {32L << 20, 3L << 30}) {
            String m = Main.outOfMemory(new OutOfMemoryError("Java heap space"), max);
            assertTrue(m.startsWith("not enough Java heap (Java heap space"), m);
            Matcher x = Pattern.compile("JAVA_OPTS=-Xmx(\\d+)g\\b").matcher(m);
            assertTrue(x.find(), m);
            assertTrue(Long.parseLong(x.group(1)) << 30 > max, m);
            assertTrue(m.contains((max >> 20) + " MiB"), () -> "says the current maximum: " + m);
        }
        String direct = Main.outOfMemory(new OutOfMemoryError("Cannot reserve 8 bytes of direct buffer memory"
                + " (allocated: 0, limit: 0)"), 1L << 30);
        assertTrue(direct.contains("JAVA_OPTS=-XX:MaxDirectMemorySize="), direct);
    }
}
