package org.fhirbeam.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.fhirbeam.config.ConfigException;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.PipelineConfig;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.transforms.CompiledMapping;
import org.fhirbeam.transforms.FhirPathCheck;
import org.fhirbeam.transforms.ProfileConformance;
import org.fhirbeam.transforms.ProfileInvariants;
import org.fhirbeam.transforms.RowCheck;
import org.fhirbeam.validation.FhirValidation;
import org.hl7.fhir.r5.model.StructureDefinition;

/**
 * The mappings of a configuration against the profiles they claim ({@code meta.profile} constants, and
 * {@code validation.profiles} of their resource type), from the validation's definitions: {@link ProfileConformance}'s
 * errors are problems, its warnings are warnings, and its row checks are what a run in {@code compiled} mode
 * evaluates in each mapping's query. {@code check-config} and the run's planning both use it.
 *
 * <p>With validation on, each mapping is also checked against its resource type's base definition, which the validator
 * always applies.
 *
 * <p>So is each Observation mapping against the vital-sign profiles R4 implies from a LOINC code it can write: a
 * constant code's profile is claimed; for a code from the row, each profile's checks apply to the rows with its code
 * (guarded row checks, and warnings for what would be errors).
 *
 * @param rowChecks each mapping's row checks by mapping name (the same check of two profiles once)
 * @param profiles the definitions each mapping was checked against, by mapping name
 * @param implied by mapping name, each profile implied by a code of the row, with the condition on the row
 */
record Conformance(List<InputException> problems, List<String> warnings, Map<String, List<RowCheck>> rowChecks,
    Map<String, List<String>> profiles, Map<String, Map<String, RowCheck.Pred>> implied) {

  /** Whether a mapping is checked against a definition: validation is on, or a mapping claims a profile. */
  static boolean claimsProfiles(PipelineConfig config) {
    return config.validation().enabled() || !claimed(config).isEmpty();
  }

  /** The validation's definitions (R4 and {@code validation.packages}), loaded once per JVM; no validator is built. */
  static FhirValidation definitions(PipelineConfig config) {
    return FhirValidation.definitions(config.validation().packages().stream().map(Path::of).toList());
  }

  /** The mappings of {@code config} against their profiles, from {@code definitions}. */
  static Conformance check(PipelineConfig config, FhirValidation definitions) {
    Map<MappingConfig, Set<String>> claimed = new LinkedHashMap<>();
    if (config.validation().enabled()) {
      config.mappings().forEach(m -> claimed.computeIfAbsent(m, k -> new LinkedHashSet<>())
          .add("http://hl7.org/fhir/StructureDefinition/" + m.resourceType()));
    }
    claimed(config).forEach((m, urls) -> claimed.computeIfAbsent(m, k -> new LinkedHashSet<>()).addAll(urls));
    List<InputException> problems = new ArrayList<>();
    List<String> warnings = new ArrayList<>();
    Map<String, List<RowCheck>> rowChecks = new LinkedHashMap<>();
    Map<String, List<String>> profiles = new LinkedHashMap<>();
    // A run validates every resource against these: one unknown, or of another type, fails them all.
    for (String url : everyResource(config)) {
      StructureDefinition profile = definitions.profile(url);
      List<String> others = config.mappings().stream().filter(m -> profile != null
          && !profile.getType().equals(m.resourceType())).map(MappingConfig::name).toList();
      if (profile == null || !others.isEmpty()) {
        problems.add(new ConfigException(config.file(), "validation.profiles", profile == null ? url + " is not"
            + " among the loaded definitions (validation.packages): every resource would fail it" : url + " is a"
            + " profile of " + profile.getType() + ": every resource of mapping(s) " + String.join(", ", others)
            + " would fail it (name a mapping's profiles in its meta.profile)"));
      } else {
        config.mappings().forEach(m -> claimed.computeIfAbsent(m, k -> new LinkedHashSet<>()).add(url));
      }
    }
    Map<String, java.util.Optional<Set<String>>> valueSets = new java.util.HashMap<>();
    java.util.function.Function<String, Set<String>> codes = url -> valueSets.computeIfAbsent(url,
        u -> java.util.Optional.ofNullable(definitions.codesOf(u))).orElse(null);
    Map<String, Map<String, RowCheck.Pred>> implied = new LinkedHashMap<>();
    claimed.forEach((m, urls) -> {
      // The same check of two profiles (US Core's and one built on it) once: a row fails on the first.
      Map<String, RowCheck> checks = new LinkedHashMap<>();
      if (config.validation().enabled()) {
        ProfileConformance.Result coded = ProfileConformance.codeSystems(m, definitions::codeSystemCodes);
        coded.findings().forEach(f -> problems.add(new ConfigException(f.location(), null, f.message())));
        coded.rowChecks().forEach(c -> checks.putIfAbsent(key(c), c));
        Map<String, RowCheck.Pred> byCode = impliedProfiles(m);
        for (Map.Entry<String, RowCheck.Pred> e : byCode.entrySet()) {
          StructureDefinition profile = definitions.profile(e.getKey());
          if (e.getValue() instanceof RowCheck.Const || profile == null) {
            urls.add(e.getKey()); // a constant code: claimed
            continue;
          }
          ProfileConformance.Result result = ProfileConformance.check(m, profile, codes, definitions::profile);
          result.findings().stream().filter(ProfileConformance.Finding::error).forEach(f -> warnings.add(
              f.location() + ": rows with the code that implies " + profile.getTitle() + " give resources that do"
                  + " not conform: " + f.message().replace(": no resource of it can conform", "")));
          result.rowChecks().forEach(c -> checks.putIfAbsent(key(c) + "|" + e.getKey(), c.guarded(e.getValue())));
        }
        byCode.values().removeIf(p -> p instanceof RowCheck.Const);
        implied.put(m.name(), byCode);
      }
      for (String url : urls) {
        StructureDefinition profile = definitions.profile(url);
        if (profile == null) {
          warnings.add(m.resourceLocation() + ": mapping " + m.name() + " claims profile " + url + ", which is not"
              + " among the loaded definitions (validation.packages): not checked");
        } else if (profile.getType().equals(m.resourceType())) {
          ProfileConformance.Result result = ProfileConformance.check(m, profile, codes, definitions::profile);
          for (ProfileConformance.Finding f : result.findings()) {
            if (f.error()) {
              problems.add(new ConfigException(f.location(), null, f.message()));
            } else {
              warnings.add(f.location() + ": " + f.message());
            }
          }
          result.rowChecks().forEach(c -> checks.putIfAbsent(key(c), c));
        }
      }
      rowChecks.put(m.name(), List.copyOf(checks.values()));
      profiles.put(m.name(), urls.stream().filter(u -> definitions.profile(u) != null).toList());
    });
    return new Conformance(List.copyOf(problems), List.copyOf(warnings.stream().distinct().toList()),
        Map.copyOf(rowChecks), Map.copyOf(profiles), Map.copyOf(implied));
  }

  /** What makes two row checks the same check (of two profiles): all but the message and its id. */
  private static String key(RowCheck c) {
    // The condition too: two invariants of one element, or two required slices of the resource, are two checks.
    return java.util.Arrays.asList(c.kind(), c.at(), c.elements(), c.codes(), c.condition()).toString();
  }

  /**
   * The vital-sign profiles an Observation mapping's LOINC codes imply ({@code code.coding[i]} with system LOINC):
   * each with {@code true} when the code is a constant, else the condition that the row's code is the sign's.
   */
  private static Map<String, RowCheck.Pred> impliedProfiles(MappingConfig m) {
    Map<String, RowCheck.Pred> out = new LinkedHashMap<>();
    if (!m.resourceType().equals("Observation")) {
      return out;
    }
    Map<String, org.fhirbeam.config.ValueRule> byPath = new LinkedHashMap<>();
    m.elements().forEach(r -> byPath.put(r.path().replaceAll("\\[0*(\\d+)]", "[$1]"), r));
    byPath.forEach((path, system) -> {
      java.util.regex.Matcher coding = java.util.regex.Pattern.compile("code\\.coding(\\[(\\d+)])?\\.system")
          .matcher(path);
      if (!coding.matches() || !"http://loinc.org".equals(system.constant() == null ? null : system.constant().strip())) {
        return;
      }
      String index = coding.group(2) == null ? "0" : coding.group(2);
      org.fhirbeam.config.ValueRule code = byPath.get(path.substring(0, path.length() - "system".length()) + "code");
      if (code == null) {
        return;
      }
      List<String> keys = List.of("code[0]", "coding[" + index + "]", "code[0]");
      FhirValidation.vitalSigns().forEach((loinc, url) -> {
        if (code.constant() != null) {
          if (code.constant().strip().equals(loinc)) {
            out.put(url, new RowCheck.Const(true));
          }
        } else if (code.unmapped() == org.fhirbeam.config.ValueRule.Unmapped.KEEP || code.codeMap().isEmpty()
            || code.codeMap().containsValue(loinc) || loinc.equals(code.defaultValue())) {
          out.merge(url, new RowCheck.Equals(keys, loinc), (a, b) -> new RowCheck.Or(List.of(a, b)));
        }
      });
    });
    return out;
  }

  /**
   * The compiled mappings with their row checks: this conformance's, and the FHIRPath invariants of their definitions
   * ({@link ProfileInvariants}). An invariant no resource of a mapping can meet is a problem; one that is not
   * translated to SQL is checked on the built resources with HAPI's FHIRPath engine (a note among the warnings), or,
   * of a profile only the row's code implies, not at all in {@code compiled} mode (a warning).
   */
  Applied apply(List<CompiledMapping> mappings, FhirValidation definitions) {
    List<InputException> problems = new ArrayList<>(this.problems);
    List<String> warnings = new ArrayList<>(this.warnings);
    List<CompiledMapping> out = new ArrayList<>();
    for (CompiledMapping m : mappings) {
      List<RowCheck> checks = new ArrayList<>(rowChecks.getOrDefault(m.name(), List.of()));
      List<FhirPathCheck> fhirPath = new ArrayList<>();
      List<StructureDefinition> sds = profiles.getOrDefault(m.name(), List.of()).stream().map(definitions::profile)
          .filter(sd -> sd != null && sd.getType().equals(m.resourceType())).toList();
      if (!sds.isEmpty()) {
        ProfileInvariants.Result invariants = ProfileInvariants.check(m, sds, definitions::profile,
            FhirValidation::fhirPath);
        checks.addAll(invariants.checks());
        // Those of a profile the row's code implies, where it does (and not already checked everywhere).
        java.util.Set<String> everywhere = new java.util.HashSet<>();
        invariants.checks().forEach(c -> everywhere.add(c.at() + c.messageId()));
        implied.getOrDefault(m.name(), Map.of()).forEach((url, guard) -> {
          StructureDefinition sd = definitions.profile(url);
          if (sd != null) {
            ProfileInvariants.Result of = ProfileInvariants.check(m, List.of(sd), definitions::profile,
                FhirValidation::fhirPath);
            of.checks().stream().filter(c -> !everywhere.contains(c.at() + c.messageId()))
                .forEach(c -> checks.add(c.guarded(guard)));
            of.untranslated().stream().filter(i -> !invariants.untranslated().contains(i)).forEach(i -> warnings.add(
                "mapping " + m.name() + ": invariant " + i + " of " + sd.getTitle() + " (implied by the row's code) is"
                    + " not compiled: only validation mode full or sample checks it"));
          }
        });
        invariants.neverMet().forEach(i -> problems.add(new InputException("mapping " + m.name() + ": no resource"
            + " of it can meet invariant " + i)));
        invariants.untranslated().forEach(i -> warnings.add("mapping " + m.name() + ": invariant " + i
            + " is not compiled to SQL: HAPI's FHIRPath engine checks it on each resource"));
        fhirPath.addAll(invariants.fhirPathChecks());
      }
      out.add(m.withChecks(checks, fhirPath));
    }
    return new Applied(List.copyOf(out), List.copyOf(problems), List.copyOf(warnings));
  }

  /** Compiled mappings with their row checks, and what checking them found. */
  record Applied(List<CompiledMapping> mappings, List<InputException> problems, List<String> warnings) {

    /** What a later run with the same inputs can take from {@link #cache} instead of loading the definitions. */
    Cached cached() {
      Map<String, List<RowCheck>> checks = new LinkedHashMap<>();
      Map<String, List<FhirPathCheck>> fhirPath = new LinkedHashMap<>();
      mappings.forEach(m -> checks.put(m.name(), m.rowChecks()));
      mappings.forEach(m -> fhirPath.put(m.name(), m.fhirPathChecks()));
      return new Cached(checks, fhirPath, warnings);
    }
  }

  /** The checks of each mapping by name, and the warnings, of an {@link Applied} without problems. */
  record Cached(Map<String, List<RowCheck>> rowChecks, Map<String, List<FhirPathCheck>> fhirPathChecks,
      List<String> warnings) implements java.io.Serializable {
    List<CompiledMapping> apply(List<CompiledMapping> mappings) {
      return mappings.stream().map(m -> m.withChecks(rowChecks.getOrDefault(m.name(), List.of()),
          fhirPathChecks.getOrDefault(m.name(), List.of()))).toList();
    }
  }

  /**
   * The row checks a configuration's mappings got before, from a file under {@code ~/.cache/fhirbeam/conformance},
   * named by a SHA-256 of everything they are computed from: this build of fhirbeam (its jar's size and time), the
   * validation settings, the content of every package, and every mapping as loaded. Loading R4's definitions takes
   * seconds; a job run again with the same mappings and packages does not need them. Null on a miss, when running from
   * classes rather than a jar, or when the cache cannot be read.
   */
  static Cached cache(PipelineConfig config) {
    Path file = cacheFile(config);
    if (file == null || !java.nio.file.Files.isRegularFile(file)) {
      return null;
    }
    try (java.io.ObjectInputStream in = new java.io.ObjectInputStream(java.nio.file.Files.newInputStream(file))) {
      return (Cached) in.readObject();
    } catch (java.io.IOException | ClassNotFoundException | ClassCastException e) {
      return null; // a damaged or foreign file: computed again, and written over
    }
  }

  /** Keeps {@code cached} for the next run of {@code config}; a cache that cannot be written is left alone. */
  static void keep(PipelineConfig config, Cached cached) {
    Path file = cacheFile(config);
    if (file == null) {
      return;
    }
    try {
      java.nio.file.Files.createDirectories(file.getParent());
      Path tmp = java.nio.file.Files.createTempFile(file.getParent(), "conformance", ".tmp");
      try (java.io.ObjectOutputStream out = new java.io.ObjectOutputStream(java.nio.file.Files.newOutputStream(tmp))) {
        out.writeObject(cached);
      }
      java.nio.file.Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    } catch (java.io.IOException | RuntimeException e) {
      // Only start-up time is lost.
    }
  }

  private static Path cacheFile(PipelineConfig config) {
    try {
      Path code = Path.of(Conformance.class.getProtectionDomain().getCodeSource().getLocation().toURI());
      if (!java.nio.file.Files.isRegularFile(code)) {
        return null; // classes being developed: no build to tell apart
      }
      java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
      java.util.function.Consumer<String> add = text -> sha.update((text + "\n").getBytes(
          java.nio.charset.StandardCharsets.UTF_8));
      add.accept("conformance-2 " + code + " " + java.nio.file.Files.size(code) + " "
          + java.nio.file.Files.getLastModifiedTime(code).toMillis());
      add.accept(config.validation().toString());
      for (String p : config.validation().packages()) {
        try (var files = java.nio.file.Files.walk(Path.of(p))) {
          for (Path f : files.filter(java.nio.file.Files::isRegularFile).sorted().toList()) {
            add.accept(f.toString());
            sha.update(java.nio.file.Files.readAllBytes(f));
          }
        }
      }
      for (MappingConfig m : config.mappings()) {
        // A code map's order differs from run to run (an immutable map's): sorted.
        String text = m.toString();
        for (org.fhirbeam.config.ValueRule r : m.elements()) {
          text = text.replace(r.toString(), r.toString().replace(r.codeMap().toString(),
              new java.util.TreeMap<>(r.codeMap()).toString()));
        }
        add.accept(text);
      }
      String home = System.getProperty("user.home");
      return home == null ? null : Path.of(home, ".cache", "fhirbeam", "conformance",
          java.util.HexFormat.of().formatHex(sha.digest()) + ".ser");
    } catch (java.io.IOException | java.net.URISyntaxException | java.security.NoSuchAlgorithmException
        | RuntimeException e) {
      return null;
    }
  }

  /** The profiles each mapping names in its {@code meta.profile}. */
  private static Map<MappingConfig, Set<String>> claimed(PipelineConfig config) {
    Map<MappingConfig, Set<String>> claimed = new LinkedHashMap<>();
    for (MappingConfig m : config.mappings()) {
      m.elements().stream().filter(r -> r.path().matches("meta\\.profile(\\[\\d+])?") && r.constant() != null)
          .forEach(r -> claimed.computeIfAbsent(m, k -> new LinkedHashSet<>()).add(r.constant()));
    }
    return claimed;
  }

  private static List<String> everyResource(PipelineConfig config) {
    return config.validation().mode() == ValidationSettings.Mode.OFF ? List.of() : config.validation().profiles();
  }
}
