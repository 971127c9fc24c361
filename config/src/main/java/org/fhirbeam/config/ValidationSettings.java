package org.fhirbeam.config;

import java.io.Serializable;
import java.util.List;

/**
 * How a run validates the resources it builds.
 *
 * @param mode {@code off}; {@code compiled} (the profiles' checks compiled into the mappings' queries, no validator);
 *     {@code sample} (compiled, and HAPI's validator on a stable share of the resources as a cross-check); or
 *     {@code full} (HAPI's validator on every resource)
 * @param sampleRate the share validated in {@code sample} mode, in (0, 1]
 * @param profiles profiles every resource is checked against, besides base R4 and those in its {@code meta.profile}
 * @param packages FHIR NPM packages ({@code .tgz}), conformance resource files or folders, as absolute paths
 * @param rejectOn the lowest issue severity that moves a resource to the rejects: {@code error}, {@code warning},
 *     or {@code never} (issues are only counted)
 */
public record ValidationSettings(Mode mode, double sampleRate, List<String> profiles, List<String> packages,
    RejectOn rejectOn) implements Serializable {

  /** Which resources are validated. */
  public enum Mode { OFF, COMPILED, SAMPLE, FULL }

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

  /** Whether the mappings' queries check the profiles ({@code compiled} and {@code sample}). */
  public boolean compiled() {
    return mode == Mode.COMPILED || mode == Mode.SAMPLE;
  }

  /** Whether HAPI's validator checks resources ({@code sample} and {@code full}). */
  public boolean usesValidator() {
    return mode == Mode.SAMPLE || mode == Mode.FULL;
  }
}
