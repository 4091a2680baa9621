package org.normcl.cli;

import java.util.Locale;

import org.normcl.BackendKind;
import org.normcl.EngineOptions;
import org.normcl.NormEngine;

import picocli.CommandLine.Option;

/** The {@code --backend} and {@code --device} options, shared by every command that runs operators. */
final class BackendOptions {
    @Option(names = "--backend", paramLabel = "auto|opencl|java", defaultValue = "auto",
            description = "Backend: auto (best OpenCL device, else Java), opencl or java. Default: ${DEFAULT-VALUE}.")
    String backend;

    @Option(names = "--device", paramLabel = "INDEX|NAME",
            description = "OpenCL device: an index from 'normcl probe' or part of a device or platform name.")
    String device;

    /** @return the engine options these flags describe */
    EngineOptions engineOptions() {
        BackendKind kind;
        switch (backend.toLowerCase(Locale.ROOT)) {
            case "auto":
                kind = BackendKind.AUTO;
                break;
            case "opencl":
                kind = BackendKind.OPENCL;
                break;
            case "java":
                kind = BackendKind.JAVA;
                break;
            default:
                throw new UserInputException("--backend = '" + backend + "': expected auto, opencl or java");
        }
        if (kind == BackendKind.JAVA && device != null) {
            throw new UserInputException("--device applies to OpenCL: drop it or use --backend opencl|auto");
        }
        return EngineOptions.of(kind).withDevice(device);
    }

    NormEngine createEngine() {
        return NormEngine.create(engineOptions());
    }
}
