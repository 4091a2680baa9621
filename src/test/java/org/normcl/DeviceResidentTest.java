package org.normcl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;

/**
 * Device-resident tensors: upload once, chain operators on the device, download once; outputs
 * follow X; empty tensors; results equal to the host-array path.
 */
class DeviceResidentTest {

    static Stream<Backends.Named> backends() {
        return Backends.all().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void chainStaysOnDeviceAndMatchesHostPath(Backends.Named b) {
        NormEngine e = b.engine();
        float[] xs = Data.gaussian("chain", 8 * 16 * 5 * 5, 2, 3);
        float[] w = Data.gaussian("chain-w", 16, 1, 0.2);
        HostTensor hx = HostTensor.of(xs, 8, 16, 5, 5);
        HostTensor hw = HostTensor.of(w, 16);
        float[] expected;
        try (NormResult g = e.groupNorm(GroupNorm.of(4), hx, hw, null);
                NormResult bn = e.batchNorm(BatchNorm.defaults().withTraining(true), g.y(), hw, null, null, null);
                NormResult ln = e.layerNorm(LayerNorm.defaults().withAxis(1), bn.y(), null, null)) {
            assertInstanceOf(HostTensor.class, ln.y(), "host in, host out");
            expected = ln.y().toHost().data();
        }
        try (DeviceTensor x = e.upload(hx); DeviceTensor dw = e.upload(hw);
                NormResult g = e.groupNorm(GroupNorm.of(4), x, dw, null);
                NormResult bn = e.batchNorm(BatchNorm.defaults().withTraining(true), g.y(), hw, null, null, null);
                NormResult ln = e.layerNorm(LayerNorm.defaults().withAxis(1), bn.y(), null, null)) {
            assertInstanceOf(DeviceTensor.class, g.y(), "device in, device out");
            assertInstanceOf(DeviceTensor.class, bn.mean());
            assertInstanceOf(DeviceTensor.class, ln.invStdDev());
            // The same kernels on the same data: the same bits as the host path.
            assertArrayEquals(expected, ln.y().toHost().data());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void closingAResultReleasesItsTensorsButNotDetachedY(Backends.Named b) {
        NormEngine e = b.engine();
        DeviceTensor y;
        DeviceTensor mean;
        try (DeviceTensor x = e.upload(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
                NormResult r = e.layerNorm(x, null, null)) {
            y = (DeviceTensor) r.detachY();
            mean = (DeviceTensor) r.mean();
        }
        assertTrue(mean.isClosed(), "mean closed with its result");
        assertEquals(false, y.isClosed(), "detached Y stays open");
        float[] host = y.toHost().data();
        assertEquals(-1.2247, host[0], 1e-3);
        y.close();
        assertTrue(y.isClosed());
        y.close(); // idempotent
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void emptyTensorsGiveEmptyOutputs(Backends.Named b) {
        NormEngine e = b.engine();
        for (Shape s : List.of(Shape.of(0, 8), Shape.of(0, 4, 3, 3), Shape.of(2, 4, 0))) {
            HostTensor x = HostTensor.zeros(s);
            try (NormResult r = e.layerNorm(x, null, null)) {
                assertEquals(s, r.y().shape());
            }
            try (NormResult r = e.groupNorm(GroupNorm.of(2), x.shape().rank() >= 2 && x.shape().dim(1) % 2 == 0 ? x
                    : HostTensor.zeros(Shape.of(0, 2)), null, null)) {
                assertEquals(0, r.y().shape().size());
            }
            try (NormResult r = e.instanceNorm(InstanceNorm.defaults(), x, null, null)) {
                assertEquals(s, r.y().shape());
            }
            try (NormResult r = e.batchNorm(BatchNorm.defaults().withTraining(true), x, null, null,
                    HostTensor.of(new float[(int) s.dim(1)], s.dim(1)), HostTensor.zeros(Shape.of(s.dim(1))))) {
                assertEquals(s, r.y().shape());
                assertEquals(s.dim(1), r.runningMean().shape().size(), "running stats unchanged, not dropped");
            }
            try (DeviceTensor d = e.upload(x); NormResult r = e.rmsNorm(RmsNorm.defaults(), d, null)) {
                assertEquals(s, r.y().toHost().shape());
            }
        }
        // Rows of zero elements: empty Y, NaN statistics (mean of nothing).
        try (NormResult r = e.layerNorm(HostTensor.zeros(Shape.of(3, 0)), null, null)) {
            assertEquals(Shape.of(3, 0), r.y().shape());
            for (float m : r.mean().toHost().data()) {
                assertTrue(Float.isNaN(m));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void fullAndUploadRoundTrip(Backends.Named b) {
        NormEngine e = b.engine();
        try (DeviceTensor t = e.full(Shape.of(3, 7), 2.5f)) {
            for (float v : t.toHost().data()) {
                assertEquals(2.5f, v);
            }
        }
        float[] data = Data.gaussian("roundtrip", 1001, 0, 1);
        try (DeviceTensor t = e.upload(data, 7, 11, 13)) {
            assertArrayEquals(data, t.toHost().data());
            assertEquals(Shape.of(7, 11, 13), t.shape());
        }
    }
}
