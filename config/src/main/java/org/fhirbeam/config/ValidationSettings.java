package org.fhirbeam.config;

import java.io.Serializable;
import java.util.List;

/**
 * How a run validates the resources it builds.
 *
 * @param mode {@code off}, {@code sample} (a stable share of the resources) or {@code full}
 * @param sampleRate the share validated in {@code sample} mode, in (0, 1]
 * @param profiles profiles every resource is checked against, besides base R4 and those in its {@code meta.profile}
 * @param packages FHIR NPM packages ({@code .tgz}), conformance resource files or folders, as absolute paths
 * @param rejectOn the lowest issue severity that moves a resource to the rejects: {@code error}, {@code warning},
 *     or {@code never} (issues are only counted)
 */
public record ValidationSettings(Mode mode, double sampleRate, List<String> profiles, List<String> packages,
    RejectOn rejectOn) implements Serializable {

  /** Which resources are validated. */
  public enum Mode { OFF, SAMPLE, FULL }

  /** Which issues reject a resource. */
  public enum RejectOn { ERROR, WARNING, NEVER }

  /** No validation. */
  public static final ValidationSettings OFF = new ValidationSettings(Mode.OFF, 0.01, List.of(), List.of(),
      RejectOn.ERROR);

  public ValidationSettings {
    profiles = List.copyOf(profiles);
    packages = List.copyOf(packages);
    if (!(sampleRate > 0 && sampleRate <= 1)) {
      throw new IllegalArgumentException("sample rate must be in (0, 1], not " + sampleRate);
    }
  }

  public boolean enabled() {
    return mode != Mode.OFF;
  }
}
