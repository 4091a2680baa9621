package org.normcl;

/**
 * A tensor that an operator reads or writes: either a {@link HostTensor} (a Java array) or a
 * {@link DeviceTensor} (memory owned by a {@link NormEngine}, on an OpenCL device or, for the Java
 * backend, on the heap).
 *
 * <p>Operators place their outputs where their input {@code X} lives: host in, host out; device
 * in, device out. Other inputs (scale, bias, statistics) may live in either place.
 */
public sealed interface Tensor permits HostTensor, DeviceTensor {

    /** @return the shape */
    Shape shape();

    /** @return the element type */
    DType dtype();

    /**
     * Copies the tensor into a Java array (a no-op for a {@link HostTensor}, which returns itself).
     *
     * @return the tensor's contents on the host
     */
    HostTensor toHost();
}
