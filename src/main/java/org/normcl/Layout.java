package org.normcl;

/**
 * Memory layout of an (N, C, D1, ..., Dk) tensor for batch, group and instance normalization.
 * Channels-last tensors are normalized in place of their layout, without transposing through
 * extra memory.
 */
public enum Layout {
    /** (N, C, D1, ..., Dk): NCHW, the ONNX and PyTorch default. */
    CHANNELS_FIRST,
    /** (N, D1, ..., Dk, C): NHWC, as channels-last vision models store activations. */
    CHANNELS_LAST
}
