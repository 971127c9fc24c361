package org.fhirbeam.io;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/**
 * The ids of one mapping task's resources, for finding resources of one type that share an id across tasks: key files
 * whose lines are DuckDB's hash of a resource's id, a tab and the position of its row in the source, in the order of
 * the task's resource parts, line for line.
 *
 * @param order the task's place among the run's tasks (mappings in configuration order, then files and pieces in
 *     order), so that the first resource with an id is the same on every runner
 * @param mapping the mapping's name
 * @param source the source's name
 * @param file the file (or query, or table) the task read
 * @param positionField how positions are named in rejects: {@code line} or {@code row_number}
 * @param paths the key files, in order
 * @param resourceTargets the targets of the task's resource parts, in order
 */
public record IdKeys(long order, String mapping, String source, String file, String positionField,
    List<String> paths, List<String> resourceTargets) implements Serializable {
  public IdKeys {
    Objects.requireNonNull(mapping, "mapping");
    Objects.requireNonNull(source, "source");
    Objects.requireNonNull(file, "file");
    Objects.requireNonNull(positionField, "positionField");
    paths = List.copyOf(paths);
    resourceTargets = List.copyOf(resourceTargets);
  }
}
