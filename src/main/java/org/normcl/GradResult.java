package org.normcl;

/**
 * What a backward pass returns: the input gradient {@code dX} and the parameter gradients
 * {@code dScale} and {@code dBias} (shaped as the scale and bias; {@code dBias} is null for RMS
 * normalization, which has no bias). The parameter gradients are reduced without atomics in a
 * fixed order, so they are the same bits on every run on a given device and shape. Tensors live
 * where {@code dY} lived; closing the result closes its device tensors.
 */
public final class GradResult implements AutoCloseable {
    private final Tensor dx;
    private final Tensor dScale;
    private final Tensor dBias;

    GradResult(Tensor dx, Tensor dScale, Tensor dBias) {
        this.dx = dx;
        this.dScale = dScale;
        this.dBias = dBias;
    }

    /** @return dL/dX, shaped as X */
    public Tensor dx() {
        return dx;
    }

    /** @return dL/dScale = sum of dY * Xhat over everything sharing a scale entry */
    public Tensor dScale() {
        return dScale;
    }

    /** @return dL/dBias = sum of dY over everything sharing a bias entry; null for RMS normalization */
    public Tensor dBias() {
        return dBias;
    }

    /** Closes every device tensor of this result. */
    @Override
    public void close() {
        for (Tensor t : new Tensor[] {dx, dScale, dBias}) {
            if (t instanceof DeviceTensor d) {
                d.close();
            }
        }
    }
}
