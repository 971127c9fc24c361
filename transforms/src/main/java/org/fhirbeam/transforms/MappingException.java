package org.fhirbeam.transforms;

import java.util.List;
import org.fhirbeam.config.InputException;

/**
 * All the problems found in a mapping (or in all mappings of a job) before any data is read, each naming file,
 * line and element path.
 */
public final class MappingException extends InputException {
  private static final long serialVersionUID = 1L;

  private final List<String> problems;

  public MappingException(String mappingName, List<String> problems) {
    super(problems.size() == 1 ? problems.get(0)
        : "mapping " + mappingName + " has " + problems.size() + " errors:\n  " + String.join("\n  ", problems));
    this.problems = List.copyOf(problems);
  }

  private MappingException(List<String> problems, String message) {
    super(message);
    this.problems = List.copyOf(problems);
  }

  /** The problems of several mappings as one error, so that one run shows them all. */
  public static MappingException combine(List<MappingException> errors) {
    if (errors.size() == 1) {
      return errors.get(0);
    }
    List<String> all = new java.util.ArrayList<>();
    for (MappingException e : errors) {
      all.addAll(e.problems());
    }
    return new MappingException(all, errors.size() + " mappings have " + all.size() + " errors:\n  "
        + String.join("\n  ", all));
  }

  public List<String> problems() {
    return problems;
  }
}
