package org.fhirbeam.transforms;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A test-only fault, as an executor lost in the middle of a task: with the system property {@value #PROPERTY} (or the
 * environment variable {@code FHIRBEAM_FAIL_ONCE}) set to {@code <mapping>/<task number>}, that mapping task fails
 * once, after it has written its output. A marker file beside the parts makes it once per run, whichever process
 * runs the retry.
 */
final class FaultSwitch {
  static final String PROPERTY = "fhirbeam.fail_once";

  private FaultSwitch() {}

  static void afterWriting(String partsDirectory, String mapping, long task) throws IOException {
    String wanted = System.getProperty(PROPERTY, System.getenv("FHIRBEAM_FAIL_ONCE"));
    if (wanted == null || !wanted.equals(mapping + "/" + task)) {
      return;
    }
    try {
      Files.createFile(Path.of(partsDirectory, ".failed-once-" + mapping + "-" + task));
    } catch (FileAlreadyExistsException e) {
      return;
    }
    throw new IllegalStateException("test fault (" + PROPERTY + "): task " + task + " of mapping " + mapping
        + " failed once after writing its output");
  }
}
