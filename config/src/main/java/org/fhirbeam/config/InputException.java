package org.fhirbeam.config;

/**
 * A problem with what the user gave the run (configuration, input files, database file) that stops it before
 * anything is written. The message is one line naming the problem and the path; it never carries record
 * contents, so it is safe to print and log. The command line exits with code 2 on it.
 */
public class InputException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public InputException(String message) {
    super(message);
  }

  public InputException(String message, Throwable cause) {
    super(message, cause);
  }
}
