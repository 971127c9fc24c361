package org.fhirbeam.transforms;

import java.util.List;
import org.fhirbeam.config.InputException;

/** All the problems found in one mapping before any data is read, each naming file, line and element path. */
public final class MappingException extends InputException {
  private static final long serialVersionUID = 1L;

  private final List<String> problems;

  public MappingException(String mappingName, List<String> problems) {
    super(problems.size() == 1 ? problems.get(0)
        : "mapping " + mappingName + " has " + problems.size() + " errors:\n  " + String.join("\n  ", problems));
    this.problems = List.copyOf(problems);
  }

  public List<String> problems() {
    return problems;
  }
}
