package org.normcl.cli;

/** Bad usage or bad input found by a command itself: exit code 2, message on stderr. */
final class UserInputException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UserInputException(String message) {
        super(message);
    }

    UserInputException(String message, Throwable cause) {
        super(message, cause);
    }
}
