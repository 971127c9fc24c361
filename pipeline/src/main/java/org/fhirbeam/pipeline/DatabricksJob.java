package org.fhirbeam.pipeline;

/**
 * The entry point of a Databricks JAR task: runs a job as {@code fhirbeam run ARGS} does, in the cluster's JVM, on
 * its Spark context ({@link Deployment}). A failed run throws, which fails the task; it never exits the JVM, which is
 * the cluster's.
 */
public final class DatabricksJob {
  private DatabricksJob() {}

  public static void main(String[] args) {
    FhirBeam.run(System.getenv(), args);
  }
}
