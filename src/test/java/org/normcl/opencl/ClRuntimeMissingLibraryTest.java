package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The message {@code normcl probe} prints when {@code libOpenCL.so} cannot be loaded (which cannot
 * be provoked in a JVM that has loaded it): it must name the Debian package to install.
 */
class ClRuntimeMissingLibraryTest {
    @Test
    void missingLibraryReasonNamesThePackageToInstall() {
        String reason = ClRuntime.missingLibraryReason();
        assertTrue(reason.contains("libOpenCL.so"), reason);
        assertTrue(reason.contains("ocl-icd-opencl-dev"), reason);
        assertTrue(reason.contains("apt-get install"), reason);
    }
}
