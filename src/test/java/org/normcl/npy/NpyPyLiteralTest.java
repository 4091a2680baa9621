package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigInteger;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NpyPyLiteralTest {

    @Test
    void parsesTheNumPyHeader() throws Exception {
        Object v = PyLiteral.parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + " ".repeat(20) + "\n");
        assertEquals(Map.of("descr", "<f4", "fortran_order", false,
                "shape", new PyLiteral.Tuple(List.of(BigInteger.valueOf(2), BigInteger.valueOf(3)))), v);
    }

    @Test
    void tuplesAndParentheses() throws Exception {
        assertEquals(new PyLiteral.Tuple(List.of()), PyLiteral.parse("()"));
        assertEquals(new PyLiteral.Tuple(List.of(BigInteger.ONE)), PyLiteral.parse("(1,)"));
        assertEquals(BigInteger.ONE, PyLiteral.parse("(1)"));
        assertEquals(BigInteger.ONE, PyLiteral.parse("((1))"));
        assertEquals(new PyLiteral.Tuple(List.of(BigInteger.ONE, BigInteger.TWO)), PyLiteral.parse("( 1 , 2 , )"));
    }

    @Test
    void scalars() throws Exception {
        assertEquals(true, PyLiteral.parse("True"));
        assertSame(PyLiteral.NONE, PyLiteral.parse("None"));
        assertEquals(BigInteger.valueOf(-7), PyLiteral.parse("- 7"));
        assertEquals(new BigInteger("123456789012345678901234567890"), PyLiteral.parse("123456789012345678901234567890L"));
        assertEquals(new PyLiteral.PyFloat("-1.5e-3"), PyLiteral.parse("-1.5e-3"));
        assertEquals(new PyLiteral.PyFloat(".5"), PyLiteral.parse(".5"));
        assertEquals("a'b\"c\\\n\u00e9", PyLiteral.parse("'a\\'b\"c\\\\\\n\\xe9'"));
        assertEquals("x", PyLiteral.parse("u\"x\""));
        assertEquals(List.of(), PyLiteral.parse("[]"));
    }

    @Test
    void repeatedKeyKeepsTheLastValueAsPythonDoes() throws Exception {
        assertEquals(Map.of("a", BigInteger.TWO), PyLiteral.parse("{'a': 1, 'a': 2}"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "'x'| 'x'",
        "(1,)| (1,)",
        "()| ()",
        "[(1, 'a'), None, True]| [(1, 'a'), None, True]",
        "{'k': [1.0]}| {'k': [1.0]}",
        "'\\x01'| '\\x01'",
    })
    void reprMatchesPython(String literal, String repr) throws Exception {
        assertEquals(repr, PyLiteral.repr(PyLiteral.parse(literal)));
    }

    @Test
    void reprPicksDoubleQuotesForASingleQuoteAsPythonDoes() {
        assertEquals("\"it's\"", PyLiteral.repr("it's"));
        assertEquals("'say \"\\'hi\\'\"'", PyLiteral.repr("say \"'hi'\""));
    }

    @Test
    void integerLiteralsAreLimitedTo40Digits() throws Exception {
        BigInteger forty9s = BigInteger.TEN.pow(40).subtract(BigInteger.ONE);
        assertEquals(forty9s, PyLiteral.parse("9".repeat(40)));
        assertEquals(forty9s.negate(), PyLiteral.parse("- " + "9".repeat(40) + "L"));
        assertEquals(BigInteger.ZERO, PyLiteral.parse("0".repeat(40)), "zeros count as digits");
        PyLiteral.SyntaxError e = assertThrows(PyLiteral.SyntaxError.class,
                () -> PyLiteral.parse("(2, -" + "1".repeat(41) + ")"));
        assertEquals("integer literal has 41 digits, more than the 40 accepted", e.getMessage());
        assertEquals(4, e.offset(), "the offset of the literal, sign included");
        assertEquals(new PyLiteral.PyFloat("1" + "0".repeat(60) + ".5"), PyLiteral.parse("1" + "0".repeat(60) + ".5"),
                "floats are not integers: kept as text");
    }

    /**
     * Python 3 refuses a decimal integer with a leading zero ({@code ast.literal_eval("010")} raises
     * SyntaxError "leading zeros in decimal integer literals are not permitted"; Python 2 read it as
     * octal 8), so numpy cannot have written one; zero itself may be written with several zeros, and
     * floats may have leading zeros. Expectations from Python 3.11's {@code ast.literal_eval}.
     */
    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "010| 0| '010'",
        "(2, 007)| 4| '007'",
        "-010| 0| '-010'",
        "- 01| 0| '-01'",
        "010L| 0| '010'",
        "00000000000000000000000000000000000001| 0| '00000000000000000000000000000000000001'",
    })
    void integerWithALeadingZeroIsASyntaxErrorAsInPython3(String literal, int offset, String quoted) {
        PyLiteral.SyntaxError e = assertThrows(PyLiteral.SyntaxError.class, () -> PyLiteral.parse(literal));
        assertEquals("integer literal " + quoted + " has a leading zero: expected no leading zeros"
                + " (Python 3 refuses them; Python 2 read them as octal)", e.getMessage());
        assertEquals(offset, e.offset(), "the offset of the literal, sign included");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "0| 0",
        "00| 0",
        "-00| 0",
        "- 000| 0",
        "(0, 00)| (0, 0)",
        "00.5| 00.5",
        "010.5| 010.5",
        "010e1| 010e1",
        "0e5| 0e5",
    })
    void zeroAndFloatsMayHaveLeadingZerosAsInPython3(String literal, String repr) throws Exception {
        assertEquals(repr, PyLiteral.repr(PyLiteral.parse(literal)));
    }

    /** BigInteger parses n digits in time quadratic in n: 2 million would take over a minute. */
    @Test
    @Timeout(value = 10, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void hugeIntegerLiteralIsRefusedWithoutParsingIt() {
        String literal = "(1" + "0".repeat(2_000_000) + ",)";
        PyLiteral.SyntaxError e = assertThrows(PyLiteral.SyntaxError.class, () -> PyLiteral.parse(literal));
        assertEquals("integer literal has 2000001 digits, more than the 40 accepted", e.getMessage());
        assertEquals(1, e.offset());
    }

    @Test
    void nestingIsLimited() throws Exception {
        String ok = "[".repeat(PyLiteral.MAX_DEPTH) + "]".repeat(PyLiteral.MAX_DEPTH);
        assertEquals(1, ((List<?>) PyLiteral.parse(ok)).size());
        String deep = "(".repeat(PyLiteral.MAX_DEPTH + 1) + ")".repeat(PyLiteral.MAX_DEPTH + 1);
        PyLiteral.SyntaxError e = assertThrows(PyLiteral.SyntaxError.class, () -> PyLiteral.parse(deep));
        assertEquals("containers nested deeper than 32 levels", e.getMessage());
        assertEquals(PyLiteral.MAX_DEPTH, e.offset());
    }
}
