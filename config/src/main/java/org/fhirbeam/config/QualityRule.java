package org.fhirbeam.config;

import java.io.Serializable;

/**
 * A data-quality rule a mapping declares: a condition every row (a DuckDB SQL predicate over the source row) or
 * every resource (a FHIRPath invariant over the built resource) must meet. A {@code reject} rule moves what fails
 * it to the rejects (stage {@code quality}); a {@code warn} rule counts its failures in the quality report.
 *
 * @param name the rule's name, used as the reject rule and the quality check
 * @param severity what a failure does
 * @param sql the SQL predicate, or null for a FHIRPath rule
 * @param fhirPath the FHIRPath expression, or null for a SQL rule
 * @param location where the rule is written, for error messages
 */
public record QualityRule(String name, Severity severity, String sql, String fhirPath, String location)
    implements Serializable {

  /** What a failure of the rule does. */
  public enum Severity {
    /** Counted in the quality report; the row or resource stays. */
    WARN,
    /** The row or resource becomes a reject of stage {@code quality}. */
    REJECT
  }

  public boolean isSql() {
    return sql != null;
  }
}
