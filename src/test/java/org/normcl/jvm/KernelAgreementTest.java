package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.reference.Reference64;
import org.normcl.testing.Tolerances;

/**
 * The Vector API kernels against the scalar ones. Elementwise kernels and column-wise reductions
 * do the same float operations in the same order, so they must agree bit for bit; row reductions
 * add in a different order (8- or 16-lane trees against 8 accumulators), so they must agree within
 * float rounding; fused kernels must return exactly what their two separate passes return. Runs
 * where the JVM has {@code jdk.incubator.vector} (the build adds it to the test JVM). The build
 * runs this package's tests twice, at the default width (at most 256 bits) and with
 * {@code -Dnormcl.vector.bits=512} (the execution {@code vector-512} in pom.xml), so both widths are
 * checked on an AVX-512 host.
 */
class KernelAgreementTest {
    private static RowKernels vector;
    private static final RowKernels SCALAR = RowKernels.scalar();
    private static final int[] LENGTHS = {1, 7, 15, 16, 17, 63, 64, 65, 128, 200, 1000, 1024};

    @BeforeAll
    static void vectorKernels() {
        vector = RowKernels.vectorOrNull();
        assumeTrue(vector != null, "the Vector API is not in this JVM (start it with --add-modules"
                + " jdk.incubator.vector): only the scalar kernels exist here");
        vector = vector.fresh();
    }

    @Test
    void bestIsVectorWhenTheModuleIsPresent() {
        assertEquals(vector.name(), RowKernels.best().name(), "RowKernels.best() picks the Vector API kernels");
        assertNotNull(RowKernels.best().fresh());
    }

    @Test
    void widthIsAtMost256BitsUnlessThePropertyAsksForMore() {
        assertEquals(FloatVector.SPECIES_256, VectorRowKernels.defaultSpecies(FloatVector.SPECIES_512));
        assertEquals(FloatVector.SPECIES_256, VectorRowKernels.defaultSpecies(FloatVector.SPECIES_256));
        assertEquals(FloatVector.SPECIES_128, VectorRowKernels.defaultSpecies(FloatVector.SPECIES_128));
        int preferred = FloatVector.SPECIES_PREFERRED.length();
        String bits = System.getProperty(RowKernels.VECTOR_BITS_PROPERTY);
        int expected = "512".equals(bits) ? preferred : Math.min(preferred, "128".equals(bits) ? 4 : 8);
        assertEquals(expected, vector.lanes(), "lanes with -D" + RowKernels.VECTOR_BITS_PROPERTY + "=" + bits);
        assertEquals("vector-" + expected, vector.name());
    }

    /**
     * The horizontal sum, unrolled per width, against the pairwise loop it stands for (written out
     * here): float addition is not associative, so random lanes tell any other order apart.
     */
    @Test
    void sumLanesAddsInThePairwiseLoopsOrder() {
        Random random = new Random(5);
        int lanes = vector.lanes();
        for (int trial = 0; trial < 1000; trial++) {
            float[] t = new float[lanes];
            for (int i = 0; i < lanes; i++) {
                t[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(9) - 4));
            }
            float[] loop = t.clone();
            for (int h = lanes >> 1; h > 0; h >>= 1) {
                for (int i = 0; i < h; i++) {
                    loop[i] += loop[i + h];
                }
            }
            assertEquals(Float.floatToRawIntBits(loop[0]), Float.floatToRawIntBits(VectorRowKernels.sumLanes(t)),
                    "lanes " + lanes + ", trial " + trial);
        }
    }

    @Test
    void reductionsAgreeWithinRounding() {
        for (int n : LENGTHS) {
            float[] a = RowNormDeterminismTest.data("red" + n, n + 5, 100);
            float k = a[2];
            double ref = 0;
            double absSum = 0;
            double refSq = 0;
            for (int i = 2; i < 2 + n; i++) {
                ref += a[i] - (double) k;
                absSum += Math.abs(a[i] - k);
                refSq += (double) a[i] * a[i];
            }
            // n additions of float32 values: at most about n u * sum|v| apart from the exact sum.
            double tol = n * 0x1p-24 * (absSum + 1);
            float m = (float) (ref / n);
            assertEquals(SCALAR.sumSquaredDeviations(a, 2, n, k, m), vector.sumSquaredDeviations(a, 2, n, k, m),
                    n * 0x1p-23 * SCALAR.sumSquaredDeviations(a, 2, n, k, m) + 1e-30, "sumSquaredDeviations n=" + n);
            double refShiftedSq = 0;
            for (int i = 2; i < 2 + n; i++) {
                double d = a[i] - (double) k;
                refShiftedSq += d * d;
            }
            for (RowKernels kern : new RowKernels[] {SCALAR, vector}) {
                assertEquals(ref, kern.sumAndSquaresShifted(a, 2, n, k), tol, kern.name() + " one-pass sum n=" + n);
                assertEquals(refShiftedSq, kern.squares, n * 0x1p-23 * refShiftedSq + 1e-30,
                        kern.name() + " one-pass squares n=" + n);
            }
            assertEquals(refSq, vector.sumSquares(a, 2, n), n * 0x1p-23 * refSq, "vector sumSquares n=" + n);
            assertEquals(refSq, SCALAR.sumSquares(a, 2, n), n * 0x1p-23 * refSq, "scalar sumSquares n=" + n);
        }
    }

    @Test
    void elementwiseKernelsAgreeBitwise() {
        for (int n : LENGTHS) {
            float[] x = RowNormDeterminismTest.data("ew" + n, n + 40, 5);
            float[] w = RowNormDeterminismTest.data("w" + n, n + 10, 1);
            float[] b = RowNormDeterminismTest.data("b" + n, n + 10, 0);
            float[] y1 = new float[x.length];
            float[] y2 = new float[x.length];
            SCALAR.normalizeAffine(x, y1, 3, n, 5f, 0.25f, 1.5f, w, b, 7);
            vector.normalizeAffine(x, y2, 3, n, 5f, 0.25f, 1.5f, w, b, 7);
            assertArrayEquals(y1, y2, "normalizeAffine n=" + n);
            SCALAR.normalizeAffine(x, y1, 3, n, 5f, 0.25f, 1.5f, w, null, 7);
            vector.normalizeAffine(x, y2, 3, n, 5f, 0.25f, 1.5f, w, null, 7);
            assertArrayEquals(y1, y2, "normalizeAffine without bias n=" + n);
            SCALAR.normalizeAffine(x, y1, 3, n, 0f, 0f, 1.5f, w, null, 7);
            vector.normalizeAffine(x, y2, 3, n, 0f, 0f, 1.5f, w, null, 7);
            assertArrayEquals(y1, y2, "normalizeAffine without shift or bias n=" + n);
            SCALAR.normalizeUniform(x, y1, 1, n, 5f, -0.5f, 0.75f, 1.25f, -2f);
            vector.normalizeUniform(x, y2, 1, n, 5f, -0.5f, 0.75f, 1.25f, -2f);
            assertArrayEquals(y1, y2, "normalizeUniform n=" + n);
            float[] mu = RowNormDeterminismTest.data("mu" + n, n, 5);
            float[] is = RowNormDeterminismTest.data("is" + n, n, 1);
            float[] lo = RowNormDeterminismTest.data("lo" + n, n, 0);
            SCALAR.columnApply(x, y1, 2, n, mu, lo, is, w, b);
            vector.columnApply(x, y2, 2, n, mu, lo, is, w, b);
            assertArrayEquals(y1, y2, "columnApply n=" + n);
        }
    }

    @Test
    void identityAffineArraysChangeNothing() {
        // Without scale or bias the backend multiplies by 1 and adds -0.0f: both exact identities,
        // so y is bit for bit ((x - k) - m) * inv, negative zeros included.
        float[] x = {5f, 5f, -0f, 0f, 1e-30f, Float.MAX_VALUE, Float.NaN, Float.POSITIVE_INFINITY, 3f, 7f, 5f, 5f, 5f,
            5f, 5f, 5f, 5f, 5f, -4f};
        int n = x.length;
        for (RowKernels k : new RowKernels[] {SCALAR, vector}) {
            float[] y = new float[n];
            for (float[] bias : new float[][] {RowNorm.negativeZeros(n), null}) {
                k.normalizeAffine(x, y, 0, n, 5f, 0f, -1f, RowNorm.ones(n), bias, 0);
                for (int i = 0; i < n; i++) {
                    float expected = ((x[i] - 5f) - 0f) * -1f;
                    assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(y[i]), k.name() + " at " + i);
                }
            }
        }
    }

    @Test
    void fusedKernelsReturnExactlyTheSeparatePasses() {
        for (RowKernels k : new RowKernels[] {SCALAR, vector}) {
            for (int n : LENGTHS) {
                float[] x = RowNormDeterminismTest.data("fused" + n, 3 * n + 3, 2);
                float[] w = RowNormDeterminismTest.data("fw" + n, n, 1);
                float[] b = RowNormDeterminismTest.data("fb" + n, n, 0);
                float[] yFused = new float[x.length];
                float[] ySeparate = new float[x.length];
                int s = 2 * n + 3;
                // normalize [1, 1+n) while taking the one-pass sums of [s, s+n)
                float sum = k.normalizeAffineSumAndSquaresNext(x, yFused, 1, n, 2f, 0.1f, 0.9f, w, b, 0, s, x[s]);
                float squares = k.squares;
                k.normalizeAffine(x, ySeparate, 1, n, 2f, 0.1f, 0.9f, w, b, 0);
                assertArrayEquals(ySeparate, yFused, k.name() + " fused apply n=" + n);
                assertEquals(Float.floatToIntBits(k.sumAndSquaresShifted(x, s, n, x[s])), Float.floatToIntBits(sum),
                        k.name() + " fused sum n=" + n);
                assertEquals(Float.floatToIntBits(k.squares), Float.floatToIntBits(squares),
                        k.name() + " fused squares n=" + n);
                // the same with one scale and bias (group and instance norm)
                sum = k.normalizeUniformSumAndSquaresNext(x, yFused, 1, n, 2f, 0.1f, 0.9f, 1.25f, -0.5f, s, x[s]);
                squares = k.squares;
                k.normalizeUniform(x, ySeparate, 1, n, 2f, 0.1f, 0.9f, 1.25f, -0.5f);
                assertArrayEquals(ySeparate, yFused, k.name() + " fused uniform apply n=" + n);
                assertEquals(Float.floatToIntBits(k.sumAndSquaresShifted(x, s, n, x[s])), Float.floatToIntBits(sum),
                        k.name() + " fused uniform sum n=" + n);
                assertEquals(Float.floatToIntBits(k.squares), Float.floatToIntBits(squares),
                        k.name() + " fused uniform squares n=" + n);
                // RMS: no shift, no mean; with and without a bias
                for (float[] bias : new float[][] {b, null}) {
                    float ss = k.normalizeAffineSumSquaresNext(x, yFused, 1, n, 0f, 0f, 0.9f, w, bias, 0, s);
                    k.normalizeAffine(x, ySeparate, 1, n, 0f, 0f, 0.9f, w, bias, 0);
                    assertEquals(Float.floatToIntBits(k.sumSquares(x, s, n)), Float.floatToIntBits(ss),
                            k.name() + " fused sum of squares n=" + n);
                    assertArrayEquals(ySeparate, yFused, k.name() + " fused apply (RMS) n=" + n);
                }
            }
        }
    }

    @Test
    void columnReductionsAgreeBitwise() {
        int stride = 160;
        int rows = 23;
        // Widths below one vector, between, and past a 4-vector strip (64 lanes with AVX-512).
        // Near 50, x - k is exact and so are the sums (an order change would go unseen); near 0 neither is.
        for (double offset : new double[] {50, 0}) {
            for (int width : new int[] {1, 5, 16, 33, 37, 64, 100, 150}) {
                float[] x = RowNormDeterminismTest.data("col" + width, rows * stride + 3, offset);
                float[] k = RowNormDeterminismTest.data("k" + width, width + 2, offset);
                float[] s1 = new float[width];
                float[] s2 = new float[width];
                float[] q1 = new float[width];
                float[] q2 = new float[width];
                SCALAR.columnSumAndSquares(x, 3, stride, rows, width, k, 2, s1, q1);
                vector.columnSumAndSquares(x, 3, stride, rows, width, k, 2, s2, q2);
                assertArrayEquals(s1, s2, "columnSumAndSquares sums width=" + width);
                assertArrayEquals(q1, q2, "columnSumAndSquares squares width=" + width);
                // The row-by-row walk (eight rows a step, then the 7 left) adds each column in the same order.
                float[] s3 = new float[width];
                float[] q3 = new float[width];
                vector.columnSumAndSquaresByRows(x, 3, stride, rows, width, k, 2, s3, q3);
                assertArrayEquals(s1, s3, "columnSumAndSquaresByRows sums width=" + width);
                assertArrayEquals(q1, q3, "columnSumAndSquaresByRows squares width=" + width);
                for (int j = 0; j < width; j++) {
                    double sum = 0;
                    double sq = 0;
                    double abs = 0;
                    for (int r = 0; r < rows; r++) {
                        double d = x[3 + r * stride + j] - (double) k[2 + j];
                        sum += d;
                        sq += d * d;
                        abs += Math.abs(d);
                    }
                    // x - k and its square rounded (at most 2u each), then rows - 1 float32 additions
                    assertEquals(sum, s1[j], (rows + 2) * 0x1p-24 * abs + 1e-30, "column sum " + j);
                    assertEquals(sq, q1[j], (rows + 2) * 0x1p-24 * sq + 1e-30, "column squares " + j);
                }
            }
        }
    }

    @Test
    void rowNormResultsAgreeWithinRounding() {
        RowNormPlan p = RowNormPlan.contiguous(37, 3001, StatMode.MEAN_VAR, 1e-5f, 1, 3001, 1, true, true);
        float[] x = RowNormDeterminismTest.data("rows", 37 * 3001, 1e4); // a large common offset
        float[] w = RowNormDeterminismTest.data("rw", 3001, 1);
        float[] b = RowNormDeterminismTest.data("rb", 3001, 0);
        RowNormDeterminismTest.Out s = RowNormDeterminismTest.run(SCALAR, 2, p, x, w, b);
        RowNormDeterminismTest.Out v = RowNormDeterminismTest.run(vector, 2, p, x, w, b);
        // Each against the float64 oracle, within the accuracy tests' bounds (Tolerances): the engine
        // runs the Vector API kernels where it can, so this is where the scalar ones are held to them.
        Reference64.Normalized ref = Reference64.layerNorm(x, new long[] {37, 3001}, -1, 1e-5f, w, b);
        double[] bound = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int row = i / 3001;
            double inv = ref.invStd()[row];
            bound[i] = Tolerances.element((x[i] - ref.mean()[row]) * inv, Math.abs(ref.mean()[row]) * inv,
                    w[i % 3001], b[i % 3001], ref.y()[i]);
        }
        double[] meanBound = new double[37];
        double[] invBound = new double[37];
        for (int r = 0; r < 37; r++) {
            meanBound[r] = Tolerances.mean(ref.mean()[r], 1 / ref.invStd()[r]);
            invBound[r] = Tolerances.invStd(ref.invStd()[r]);
        }
        for (RowNormDeterminismTest.Out o : new RowNormDeterminismTest.Out[] {s, v}) {
            String name = o == s ? SCALAR.name() : vector.name();
            Tolerances.assertWithin(name + " Y", o.y(), ref.y(), bound);
            Tolerances.assertWithin(name + " Mean", o.mean(), ref.mean(), meanBound);
            Tolerances.assertWithin(name + " InvStd", o.inv(), ref.invStd(), invBound);
        }
        for (int i = 0; i < x.length; i++) {
            // Both are within the bound of the exact result; against each other a few dozen ulps of
            // the output's magnitude (|y| is a few units here).
            assertEquals(s.y()[i], v.y()[i], 1e-5f * (1 + Math.abs(s.y()[i])), "Y at " + i);
        }
        for (int r = 0; r < 37; r++) {
            assertEquals(s.mean()[r], v.mean()[r], 1e-3f, "Mean (1e4 + ...) of row " + r);
            assertEquals(s.inv()[r], v.inv()[r], 1e-5f * s.inv()[r], "InvStd of row " + r);
        }
    }
}
