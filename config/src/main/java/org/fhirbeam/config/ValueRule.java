package org.fhirbeam.config;

import java.io.Serializable;
import java.math.BigDecimal;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * How one FHIR element gets its value from a row: from a column, a constant or an expression, optionally
 * translated by a code map, with a default for empty (and unmapped) input.
 *
 * @param path the FHIR path the value goes to, for example {@code name[0].given[0]}; {@code id} for the id rule
 * @param column the source column read, or null for a constant
 * @param constant the constant value, or null when read from a column or an expression
 * @param expression the expression text (see the mapping reference), or null
 * @param codeMap source code to target code; empty when values are taken as they are
 * @param ignoreCase whether code map keys match regardless of case
 * @param defaultValue value used when the input is empty (and, when {@code unmapped} says so, not in the code
 *     map); null for none
 * @param formats input patterns for date and dateTime values (see the mapping reference)
 * @param timezone the IANA time zone of date-time inputs without an offset, and of dateTime output; null for UTC
 * @param required whether an empty input makes the row a reject instead of omitting the element
 * @param location where the rule is written, for error messages
 * @param rangeMin the smallest plausible value of a number element (a warn check), or null for none
 * @param rangeMax the largest plausible value of a number element, or null for none
 * @param unmapped what a present input that is not in the code map becomes
 */
public record ValueRule(String path, String column, String constant, String expression,
    Map<String, String> codeMap,
    boolean ignoreCase, String defaultValue, List<String> formats, String timezone, boolean required,
    String location, BigDecimal rangeMin, BigDecimal rangeMax, Unmapped unmapped)
    implements Serializable {

  /**
   * What a code map does with a present input it does not list. Without the key {@code unmapped}, a rule with a
   * {@code default} writes the default and one without rejects the row.
   */
  public enum Unmapped {
    /** The row is a reject (rule {@code code-map}). */
    REJECT,
    /** The value is written as it is (trimmed), checked like any value of the element. */
    KEEP,
    /** The rule's {@code default} is written. */
    DEFAULT,
    /** The element is left out; the row is still written. */
    OMIT
  }

  /** Whether the rule declares a plausible range. */
  public boolean hasRange() {
    return rangeMin != null || rangeMax != null;
  }

  public ValueRule {
    Objects.requireNonNull(unmapped, "unmapped");
    codeMap = Map.copyOf(codeMap);
    formats = List.copyOf(formats);
  }
}
