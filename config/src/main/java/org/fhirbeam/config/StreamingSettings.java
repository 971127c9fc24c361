package org.fhirbeam.config;

import java.io.Serializable;
import java.time.Duration;

/**
 * How a job with a streaming source commits: fixed windows of processing time, each committed like a small run.
 *
 * @param window the length of a window
 */
public record StreamingSettings(Duration window) implements Serializable {
  public static final StreamingSettings DEFAULTS = new StreamingSettings(Duration.ofSeconds(10));
}
