package org.fhirbeam.config;

import java.util.ArrayList;
import java.util.List;

/**
 * A problem with what the user gave the run (configuration, input files, database file) that stops it before
 * anything is written. The message is one line naming the problem and the path (or one line per problem, when it
 * collects several); it never carries record contents, so it is safe to print and log. The command line exits
 * with code 2 on it.
 */
public class InputException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The lines of a collection of problems; null for a single problem. */
  private final List<String> collected;

  public InputException(String message) {
    super(message);
    this.collected = null;
  }

  public InputException(String message, Throwable cause) {
    super(message, cause);
    this.collected = null;
  }

  private InputException(List<String> problems) {
    super("the configuration has " + problems.size() + " problems:\n  " + String.join("\n  ", problems));
    this.collected = List.copyOf(problems);
  }

  /** The problems reported, one line each. */
  public List<String> problems() {
    return collected != null ? collected : List.of(getMessage());
  }

  /**
   * Several problems as one exception, so that one check shows them all; a single one is returned as it is.
   *
   * @throws IllegalArgumentException when {@code errors} is empty
   */
  public static InputException together(List<? extends InputException> errors) {
    if (errors.isEmpty()) {
      throw new IllegalArgumentException("no problems to combine");
    }
    if (errors.size() == 1) {
      return errors.get(0);
    }
    List<String> all = new ArrayList<>();
    for (InputException e : errors) {
      all.addAll(e.problems());
    }
    return new InputException(all);
  }
}
