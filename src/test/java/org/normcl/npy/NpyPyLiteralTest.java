package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigInteger;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
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
    void nestingIsLimited() throws Exception {
        String ok = "[".repeat(PyLiteral.MAX_DEPTH) + "]".repeat(PyLiteral.MAX_DEPTH);
        assertEquals(1, ((List<?>) PyLiteral.parse(ok)).size());
        String deep = "(".repeat(PyLiteral.MAX_DEPTH + 1) + ")".repeat(PyLiteral.MAX_DEPTH + 1);
        PyLiteral.SyntaxError e = assertThrows(PyLiteral.SyntaxError.class, () -> PyLiteral.parse(deep));
        assertEquals("containers nested deeper than 32 levels", e.getMessage());
        assertEquals(PyLiteral.MAX_DEPTH, e.offset());
    }
}
