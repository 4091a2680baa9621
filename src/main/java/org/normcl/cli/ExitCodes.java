package org.normcl.cli;

import java.io.UncheckedIOException;

import org.normcl.npy.NpyFormatException;

/** The CLI's exit codes and the one place exceptions are mapped to them. */
final class ExitCodes {
    /** Success. */
    static final int OK = 0;
    /** A runtime failure: an OpenCL error, a missing device, an I/O error while writing. */
    static final int FAILURE = 1;
    /** Bad usage or bad input: unknown options, malformed or mis-shaped files, invalid values. */
    static final int USAGE = 2;

    private ExitCodes() {
    }

    /** @return the exit code for an exception thrown by a command */
    static int of(Throwable t) {
        if (t instanceof UserInputException || t instanceof NpyFormatException
                || t instanceof IllegalArgumentException) {
            return USAGE;
        }
        return FAILURE;
    }

    /** @return a one-paragraph message for an exception, without a stack trace */
    static String message(Throwable t) {
        if (t instanceof UncheckedIOException u && u.getCause() != null) {
            return u.getMessage();
        }
        String m = t.getMessage();
        return m == null || m.isBlank() ? t.getClass().getSimpleName() : m;
    }
}
