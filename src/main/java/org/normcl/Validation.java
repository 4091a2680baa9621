package org.normcl;

/** Argument checks shared by the operator specs, so every message has the same form. */
final class Validation {
    private Validation() {
    }

    /** Checks that an epsilon is a finite float32 greater than zero. */
    static float epsilon(String parameter, double value) {
        float f = (float) value;
        if (!(f > 0f) || Float.isInfinite(f)) {
            throw new IllegalArgumentException(parameter + " = " + value + ": expected a finite value > 0");
        }
        return f;
    }

    /**
     * Checks that an argument is given: an {@link IllegalArgumentException} naming it and what it
     * should be, like every other bad argument (not a NullPointerException).
     */
    static <T> T notNull(T value, String parameter, String expected) {
        if (value == null) {
            throw new IllegalArgumentException(parameter + " must not be null: expected " + expected);
        }
        return value;
    }

    /** Checks that a layout is given. */
    static Layout layout(Layout layout) {
        if (layout == null) {
            throw new IllegalArgumentException("layout must not be null: expected CHANNELS_FIRST or CHANNELS_LAST");
        }
        return layout;
    }

    /** Checks that a momentum lies in [0, 1]. */
    static float momentum(double value) {
        if (!(value >= 0.0 && value <= 1.0)) {
            throw new IllegalArgumentException("momentum = " + value + ": expected a value in [0, 1]");
        }
        return (float) value;
    }
}
