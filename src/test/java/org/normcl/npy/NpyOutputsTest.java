package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.normcl.HostTensor;

class NpyOutputsTest {
    @TempDir
    Path dir;

    @Test
    void closeWithoutCommitLeavesNoFiles() {
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("y.npy"), new float[] {1, 2, 3, 4}, new long[] {2, 2});
            out.stage(dir.resolve("mean.npy"), new float[] {1.5f, 3.5f}, new long[] {2});
            assertEquals(2, NpyFixtures.list(dir).length, "staged data sits in temporary files");
            for (String name : NpyFixtures.list(dir)) {
                assertTrue(name.startsWith(".") && name.contains(".npy.tmp-"), name);
            }
        }
        assertArrayEquals(new String[0], NpyFixtures.list(dir));
    }

    @Test
    void exceptionBeforeCommitLeavesNoFiles() {
        assertThrows(IllegalStateException.class, () -> {
            try (NpyOutputs out = new NpyOutputs()) {
                out.stage(dir.resolve("y.npy"), new float[] {1}, new long[] {1});
                throw new IllegalStateException("the computation failed");
            }
        });
        assertArrayEquals(new String[0], NpyFixtures.list(dir));
    }

    @Test
    void commitPlacesAllFiles() {
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("y.npy"), new float[] {1, 2, 3, 4}, new long[] {2, 2});
            out.stage(dir.resolve("mean.npy"), HostTensor.of(new float[] {1.5f, 3.5f}, 2));
            out.stage(dir.resolve("scalar.npy"), new float[] {7}, new long[0]);
            assertEquals(List.of(dir.resolve("y.npy"), dir.resolve("mean.npy"), dir.resolve("scalar.npy")),
                    out.targets());
            out.commit();
        }
        assertArrayEquals(new String[] {"mean.npy", "scalar.npy", "y.npy"}, NpyFixtures.list(dir));
        assertArrayEquals(new float[] {1, 2, 3, 4}, Npy.read(dir.resolve("y.npy")).data());
        assertArrayEquals(new long[] {2, 2}, Npy.read(dir.resolve("y.npy")).shape());
        assertArrayEquals(new float[] {1.5f, 3.5f}, Npy.read(dir.resolve("mean.npy")).data());
        assertArrayEquals(new long[0], Npy.read(dir.resolve("scalar.npy")).shape());
    }

    @Test
    void commitReplacesExistingFiles() throws Exception {
        Files.writeString(dir.resolve("y.npy"), "old");
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("y.npy"), new float[] {9}, new long[] {1});
            assertEquals("old", Files.readString(dir.resolve("y.npy")), "untouched until commit");
            out.commit();
        }
        assertArrayEquals(new float[] {9}, Npy.read(dir.resolve("y.npy")).data());
        assertArrayEquals(new String[] {"y.npy"}, NpyFixtures.list(dir));
    }

    @Test
    void closeWithoutCommitKeepsExistingFiles() throws Exception {
        Files.writeString(dir.resolve("y.npy"), "old");
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("y.npy"), new float[] {9}, new long[] {1});
        }
        assertEquals("old", Files.readString(dir.resolve("y.npy")));
        assertArrayEquals(new String[] {"y.npy"}, NpyFixtures.list(dir));
    }

    @Test
    void failedRenameUndoesTheCommit() throws Exception {
        Path a = dir.resolve("a.npy");
        Path b = dir.resolve("b.npy");
        Path c = dir.resolve("c.npy");
        Path existing = dir.resolve("existing.npy");
        Files.writeString(existing, "old");
        NpyOutputs out = new NpyOutputs();
        out.stage(a, new float[] {1}, new long[] {1});
        out.stage(existing, new float[] {2}, new long[] {1});
        out.stage(b, new float[] {3}, new long[] {1});
        out.stage(c, new float[] {4}, new long[] {1});
        // Someone creates a non-empty directory where b.npy goes: its rename must fail.
        Files.createDirectory(b);
        Files.writeString(b.resolve("keep.txt"), "not ours");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, out::commit);
        assertTrue(e.getMessage().startsWith("cannot write " + b + ": "), e.getMessage());
        assertFalse(Files.exists(a), "a.npy was created by the failed commit and is removed again");
        assertFalse(Files.exists(c));
        assertTrue(Files.exists(existing), "a file that existed before is not deleted");
        assertEquals("old", Files.readString(existing), "and it is restored to its previous contents");
        assertTrue(Files.exists(b.resolve("keep.txt")));
        assertArrayEquals(new String[] {"b.npy", "existing.npy"}, NpyFixtures.list(dir), "no temporary file left");
        assertDoesNotThrow(out::close);
        assertThrows(IllegalStateException.class, out::commit);
    }

    /** Creates a symbolic link, or skips the test where the file system has none. */
    private static void symlink(Path link, Path target) {
        try {
            Files.createSymbolicLink(link, target);
        } catch (UnsupportedOperationException | IOException e) {
            Assumptions.abort("no symbolic links here: " + e);
        }
    }

    /** Creates real.npy holding "old" and link.npy, a relative symbolic link to it; returns the link. */
    private Path linkToOldFile() throws IOException {
        Files.writeString(dir.resolve("real.npy"), "old");
        Path link = dir.resolve("link.npy");
        symlink(link, Path.of("real.npy"));
        return link;
    }

    @Test
    void failedRenameKeepsSymbolicLinks() throws Exception {
        Path link = linkToOldFile();
        Path dangling = dir.resolve("dangling.npy");
        symlink(dangling, dir.resolve("nowhere.npy"));
        Path b = dir.resolve("b.npy");
        NpyOutputs out = new NpyOutputs();
        out.stage(link, new float[] {1}, new long[] {1});
        out.stage(dangling, new float[] {2}, new long[] {1});
        out.stage(b, new float[] {3}, new long[] {1});
        Files.createDirectory(b); // b.npy's rename must fail
        Files.writeString(b.resolve("keep.txt"), "not ours");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, out::commit);
        assertTrue(e.getMessage().startsWith("cannot write " + b + ": "), e.getMessage());
        assertTrue(Files.isSymbolicLink(link), "the link is put back, not deleted");
        assertEquals(Path.of("real.npy"), Files.readSymbolicLink(link));
        assertEquals("old", Files.readString(link), "and the file it points to is untouched");
        assertTrue(Files.isSymbolicLink(dangling), "a dangling link too");
        assertEquals(dir.resolve("nowhere.npy"), Files.readSymbolicLink(dangling));
        assertArrayEquals(new String[] {"b.npy", "dangling.npy", "link.npy", "real.npy"}, NpyFixtures.list(dir),
                "no temporary or backup file left");
    }

    @Test
    void commitReplacesASymbolicLinkNotTheFileItPointsTo() throws Exception {
        Path link = linkToOldFile();
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(link, new float[] {9}, new long[] {1});
            out.commit();
        }
        assertFalse(Files.isSymbolicLink(link));
        assertArrayEquals(new float[] {9}, Npy.read(link).data());
        assertEquals("old", Files.readString(dir.resolve("real.npy")));
        assertArrayEquals(new String[] {"link.npy", "real.npy"}, NpyFixtures.list(dir), "no backup left");
    }

    private static final String EXPECTED_TARGET = ": expected a new file name, a regular file or a symbolic link to one";

    /**
     * Creates at {@code p} a file of the POSIX type named by {@code kind} ({@code mkfifo(1)},
     * {@code mknod(1)} for a character device like /dev/null, a bound Unix-domain socket, a directory,
     * symbolic links to some of these), or skips the test where that cannot be made here; returns
     * how the error should describe it.
     */
    static String makeSpecial(String kind, Path p) throws Exception {
        switch (kind) {
            case "fifo":
                run("mkfifo", p.toString());
                return "a named pipe (FIFO)";
            case "char device":
                run("mknod", p.toString(), "c", "1", "3"); // /dev/null's numbers; needs root
                return "a character device";
            case "socket":
                try (ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                    ch.bind(UnixDomainSocketAddress.of(p)); // the socket file stays after close
                } catch (UnsupportedOperationException | IOException e) {
                    Assumptions.abort("no Unix-domain sockets here: " + e);
                }
                return "a socket";
            case "directory":
                Files.createDirectory(p);
                return "a directory";
            case "link to fifo":
                run("mkfifo", p.resolveSibling("real-fifo").toString());
                symlink(p, Path.of("real-fifo"));
                return "a symbolic link to a named pipe (FIFO) (real-fifo)";
            case "link to directory":
                Files.createDirectory(p.resolveSibling("real-dir"));
                symlink(p, Path.of("real-dir"));
                return "a symbolic link to a directory (real-dir)";
            case "link to /dev/null":
                Assumptions.assumeTrue(Files.exists(Path.of("/dev/null")), "no /dev/null here");
                symlink(p, Path.of("/dev/null"));
                return "a symbolic link to a character device (/dev/null)";
            default:
                throw new IllegalArgumentException(kind);
        }
    }

    private static void run(String... command) throws Exception {
        Process proc;
        try {
            proc = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException e) {
            Assumptions.abort(command[0] + " cannot run here: " + e);
            return;
        }
        String output = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        Assumptions.assumeTrue(proc.waitFor() == 0, () -> String.join(" ", command) + " failed here: " + output);
    }

    /** @return the POSIX file type as stat(1) prints it (%F), the link itself not followed */
    static String fileType(Path p) throws Exception {
        Process proc = new ProcessBuilder("stat", "-c", "%F", p.toString()).redirectErrorStream(true).start();
        String output = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertEquals(0, proc.waitFor(), output);
        return output;
    }

    /**
     * A rename onto a named pipe, a device or a socket replaced it with a regular file ({@code
     * --output /dev/null} as root replaced the system's /dev/null); a link to one of them would be
     * replaced instead of being written through. All are refused before anything is written.
     */
    @ParameterizedTest
    @ValueSource(strings = {"fifo", "char device", "socket", "directory", "link to fifo", "link to directory",
        "link to /dev/null"})
    void stageRefusesATargetThatIsNotAFile(String kind) throws Exception {
        Path t = dir.resolve("t.npy");
        String what = makeSpecial(kind, t);
        String type = fileType(t);
        String[] files = NpyFixtures.list(dir);
        String expected = "cannot write " + t + ": it is " + what + EXPECTED_TARGET;
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("y.npy"), new float[] {1}, new long[] {1});
            assertEquals(expected, assertThrows(IllegalArgumentException.class,
                    () -> out.stage(t, new float[] {2}, new long[] {1})).getMessage());
            assertEquals(expected, assertThrows(IllegalArgumentException.class,
                    () -> out.stage(t, HostTensor.of(new float[] {2}, 1))).getMessage());
            assertEquals(List.of(dir.resolve("y.npy")), out.targets());
        }
        assertEquals(expected, assertThrows(IllegalArgumentException.class,
                () -> Npy.write(t, new float[] {2}, new long[] {1})).getMessage());
        assertEquals(expected, assertThrows(IllegalArgumentException.class,
                () -> Npy.writeTensor(t, HostTensor.of(new float[] {2}, 1))).getMessage());
        assertEquals(expected, assertThrows(IllegalArgumentException.class, () -> NpyOutputs.checkTarget(t))
                .getMessage());
        assertEquals(type, fileType(t), "left as it was");
        assertArrayEquals(files, NpyFixtures.list(dir), "no temporary file left");
    }

    @Test
    void fileAndLinksToAFileOrToNothingAreAccepted() throws Exception {
        linkToOldFile();
        symlink(dir.resolve("dangling.npy"), dir.resolve("nowhere.npy"));
        symlink(dir.resolve("loop.npy"), Path.of("loop.npy"));
        for (String name : new String[] {"new.npy", "real.npy", "link.npy", "dangling.npy", "loop.npy"}) {
            assertDoesNotThrow(() -> NpyOutputs.checkTarget(dir.resolve(name)), name);
        }
        assertEquals("target", assertThrows(NullPointerException.class, () -> NpyOutputs.checkTarget(null))
                .getMessage());
    }

    /** A target that becomes a named pipe after staging is refused by commit, and kept. */
    @Test
    void commitRefusesATargetThatBecameAFifo() throws Exception {
        Path a = dir.resolve("a.npy");
        Path p = dir.resolve("p.npy");
        NpyOutputs out = new NpyOutputs();
        out.stage(a, new float[] {1}, new long[] {1});
        out.stage(p, new float[] {2}, new long[] {1});
        makeSpecial("fifo", p);
        UncheckedIOException e = assertThrows(UncheckedIOException.class, out::commit);
        assertEquals("cannot write " + p + ": it is now a named pipe (FIFO)" + EXPECTED_TARGET, e.getMessage());
        assertEquals("fifo", fileType(p), "the pipe is left as it was");
        assertArrayEquals(new String[] {"p.npy"}, NpyFixtures.list(dir), "a.npy undone, no temporary file left");
    }

    /**
     * One file named twice (through a symbolic link to the directory, or a hard link) is refused
     * by stage: a commit would back it up twice. A symbolic link to a staged file is a target of its
     * own (the link is replaced).
     */
    @Test
    void stageRefusesAnotherNameOfAStagedFile() throws Exception {
        Path y = dir.resolve("y.npy");
        Files.writeString(y, "old");
        symlink(dir.resolve("alias"), Path.of("."));
        Files.createLink(dir.resolve("hard.npy"), y);
        symlink(dir.resolve("link.npy"), Path.of("y.npy"));
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(y, new float[] {1}, new long[] {1});
            for (String alias : new String[] {"alias/y.npy", "hard.npy"}) {
                Path p = dir.resolve(alias);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> out.stage(p, new float[] {2}, new long[] {1}), alias);
                assertEquals("target " + p + " is already staged as " + y + " (the same file)", e.getMessage());
                assertTrue(NpyOutputs.sameTarget(y, p), alias);
            }
            assertFalse(NpyOutputs.sameTarget(y, dir.resolve("link.npy")));
            out.stage(dir.resolve("link.npy"), new float[] {3}, new long[] {1});
        }
        assertEquals("old", Files.readString(y));
        assertArrayEquals(new String[] {"alias", "hard.npy", "link.npy", "y.npy"}, NpyFixtures.list(dir));
    }

    /**
     * Two staged targets that became one file after staging (a directory replaced by a link to the
     * other's): undoing the commit puts back the newest backup first, so the oldest, the user's
     * file, ends up in place rather than the first output's new bytes.
     */
    @Test
    void failedRenameRestoresAnAliasedTargetsOriginal() throws Exception {
        Path y = dir.resolve("y.npy");
        Files.writeString(y, "old");
        Path alias = dir.resolve("alias");
        Files.createDirectory(alias);
        Path c = dir.resolve("c.npy");
        NpyOutputs out = new NpyOutputs();
        out.stage(y, new float[] {1}, new long[] {1});
        out.stage(alias.resolve("y.npy"), new float[] {2}, new long[] {1});
        out.stage(c, new float[] {3}, new long[] {1});
        // alias/ becomes a link to dir, its temporary file moved along so that its path still holds.
        try (java.util.stream.Stream<Path> s = Files.list(alias)) {
            for (Path t : s.toList()) {
                Files.move(t, dir.resolve(t.getFileName()));
            }
        }
        Files.delete(alias);
        symlink(alias, Path.of("."));
        Files.createDirectory(c); // c.npy's rename must fail
        Files.writeString(c.resolve("keep.txt"), "not ours");
        assertThrows(UncheckedIOException.class, out::commit);
        assertEquals("old", new String(Files.readAllBytes(y), StandardCharsets.ISO_8859_1),
                "the user's file is put back, not the first output's bytes");
        assertArrayEquals(new String[] {"alias", "c.npy", "y.npy"}, NpyFixtures.list(dir),
                "no temporary or backup file left");
    }

    /**
     * Files of any content (a JSON report, an image) go through the same staging as arrays: placed
     * together, a symbolic link among them kept on a failed commit, a target that became a pipe
     * refused, a failing writer leaving no temporary file.
     */
    @Test
    void stagesBytesAndContentAllOrNothing() throws Exception {
        Path json = dir.resolve("r.json");
        Path png = dir.resolve("p.png");
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(json, "{}".getBytes(StandardCharsets.UTF_8));
            out.stage(png, o -> o.write(new byte[] {1, 2, 3}));
            assertEquals(2, NpyFixtures.list(dir).length, "two temporary files");
            out.commit();
        }
        assertEquals("{}", Files.readString(json));
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(png));

        Path link = linkToOldFile();
        Path b = dir.resolve("b.txt");
        NpyOutputs out = new NpyOutputs();
        out.stage(link, "new".getBytes(StandardCharsets.UTF_8));
        out.stage(b, o -> o.write('b'));
        Files.createDirectory(b);
        Files.writeString(b.resolve("keep.txt"), "not ours");
        assertThrows(UncheckedIOException.class, out::commit);
        assertTrue(Files.isSymbolicLink(link));
        assertEquals("old", Files.readString(link));

        Path p = dir.resolve("pipe.txt");
        NpyOutputs later = new NpyOutputs();
        later.stage(p, new byte[] {1});
        makeSpecial("fifo", p);
        assertEquals("cannot write " + p + ": it is now a named pipe (FIFO)" + EXPECTED_TARGET,
                assertThrows(UncheckedIOException.class, later::commit).getMessage());

        Path failing = dir.resolve("failing.txt");
        try (NpyOutputs more = new NpyOutputs()) {
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> more.stage(failing, o -> {
                o.write(1);
                throw new IOException("disk full");
            }));
            assertEquals("cannot write " + failing + ": disk full", e.getMessage());
        }
        assertArrayEquals(new String[] {"b.txt", "link.npy", "p.png", "pipe.txt", "r.json", "real.npy"},
                NpyFixtures.list(dir), "no temporary or backup file left");
    }

    @Test
    void failedStageKeepsEarlierStagesUntilClose() {
        Path missing = dir.resolve("missing").resolve("x.npy");
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("y.npy"), new float[] {1}, new long[] {1});
            UncheckedIOException e = assertThrows(UncheckedIOException.class,
                    () -> out.stage(missing, new float[] {1}, new long[] {1}));
            assertEquals("cannot write " + missing + ": directory " + missing.getParent() + " does not exist",
                    e.getMessage());
            assertEquals(1, NpyFixtures.list(dir).length);
        }
        assertArrayEquals(new String[0], NpyFixtures.list(dir));
    }

    @Test
    void stageValidatesArguments() {
        try (NpyOutputs out = new NpyOutputs()) {
            Path y = dir.resolve("y.npy");
            assertEquals("data has 3 elements but shape [2, 2] needs 4", assertThrows(IllegalArgumentException.class,
                    () -> out.stage(y, new float[3], new long[] {2, 2})).getMessage());
            out.stage(y, new float[] {1}, new long[] {1});
            assertEquals("target " + dir.resolve("./y.npy") + " is already staged",
                    assertThrows(IllegalArgumentException.class,
                            () -> out.stage(dir.resolve("./y.npy"), new float[] {1}, new long[] {1})).getMessage());
            assertEquals("target", assertThrows(NullPointerException.class,
                    () -> out.stage(null, new float[] {1}, new long[] {1})).getMessage());
        }
        assertArrayEquals(new String[0], NpyFixtures.list(dir));
    }

    @Test
    void usableOnlyOnce() {
        NpyOutputs out = new NpyOutputs();
        out.stage(dir.resolve("y.npy"), new float[] {1}, new long[] {1});
        out.commit();
        out.close();
        out.close();
        assertEquals("cannot stage: these outputs are already committed or closed",
                assertThrows(IllegalStateException.class,
                        () -> out.stage(dir.resolve("z.npy"), new float[] {1}, new long[] {1})).getMessage());
        assertThrows(IllegalStateException.class, out::commit);
        assertArrayEquals(new String[] {"y.npy"}, NpyFixtures.list(dir));
    }

    @Test
    void emptyCommitIsANoOp() {
        try (NpyOutputs out = new NpyOutputs()) {
            out.commit();
        }
        assertArrayEquals(new String[0], NpyFixtures.list(dir));
    }
}
