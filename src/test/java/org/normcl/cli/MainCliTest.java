package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

/** What {@link Main} says itself: a missing command, an exhausted heap, and help texts. */
class MainCliTest {
    /** The commands README.md documents. */
    private static final List<String> COMMANDS = List.of("probe", "apply", "grad", "demo", "bench", "tune");

    @Test
    void noCommandListsEveryCommand() {
        CliTestSupport.Result r = CliTestSupport.run();
        assertEquals(2, r.code(), r::toString);
        String line = r.err().lines().filter(l -> l.contains("missing command")).findFirst().orElse("");
        for (String c : COMMANDS) {
            assertTrue(line.matches(".*\\b" + c + "\\b.*"), () -> "the message does not name " + c + "\n" + r);
        }
        r.assertNoStackTrace();
    }

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

    /**
     * --momentum's default depends on --convention: 0.9 for ONNX (weight of the running value),
     * 0.1 for PyTorch (weight of the batch); the help used to give only 0.9.
     */
    @Test
    void momentumHelpGivesBothDefaults() {
        CliTestSupport.Result r = CliTestSupport.run("apply", "--help").assertOk();
        List<String> lines = r.out().lines().toList();
        int at = 0;
        while (at < lines.size() && !lines.get(at).trim().startsWith("--momentum=")) {
            at++;
        }
        assertTrue(at < lines.size(), r::toString);
        StringBuilder entry = new StringBuilder(lines.get(at).trim());
        for (int i = at + 1; i < lines.size() && !lines.get(i).trim().startsWith("-"); i++) {
            entry.append(' ').append(lines.get(i).trim()); // the description's continuation lines
        }
        String text = entry.toString();
        assertTrue(text.contains("0.9 with onnx") && text.contains("0.1 with pytorch"), text);
    }
}
