package org.fhirbeam.pipeline;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.fhirbeam.config.InputException;
import org.fhirbeam.validation.CompiledChecks;
import org.fhirbeam.validation.FhirValidation;
import org.fhirbeam.validation.FhirValidation.Issue;
import org.fhirbeam.validation.FhirValidation.Severity;
import org.fhirbeam.validation.FhirValidation.Verdict;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code fhirbeam validate}: validates resource files offline and prints what it found. */
@Command(name = "validate", mixinStandardHelpOptions = true,
    description = "Validate FHIR R4 resources (NDJSON, JSON or XML files, single resources or Bundles; folders are"
        + " searched) against base R4, the profiles in each resource's meta.profile and any --profile, offline."
        + " Prints each error and warning with file, line and FHIRPath location, then a summary. Exit code 1 when"
        + " an error is found, 2 for unreadable input. By default the compiled checks decide most resources without"
        + " HAPI's validator, which checks the others (--mode full: the validator checks every resource).")
final class ValidateCommand implements Callable<Integer> {
  private static final int BATCH = 512;

  @Parameters(paramLabel = "PATH", arity = "1..*", description = "Files or folders (*.ndjson, *.ndjson.gz, *.json, *.xml).")
  List<Path> paths;

  @Option(names = "--profile", paramLabel = "URL|FILE",
      description = "Also check every resource against this profile: a canonical URL of a loaded profile, or a"
          + " StructureDefinition file. Repeatable.")
  List<String> profiles = new ArrayList<>();

  @Option(names = "--package", paramLabel = "FILE",
      description = "Load definitions: a FHIR NPM package (.tgz), a conformance resource (JSON or XML) or a folder"
          + " of them. Repeatable.")
  List<Path> packages = new ArrayList<>();

  @Option(names = "--outcome", paramLabel = "FILE",
      description = "Also write every issue as one FHIR OperationOutcome (JSON) to FILE.")
  Path outcome;

  @Option(names = "--information", description = "Print information issues too (always counted).")
  boolean information;

  /** How resources are checked. */
  enum Mode { compiled, full }

  @Option(names = "--mode", paramLabel = "compiled|full", defaultValue = "compiled",
      description = "compiled (default): the compiled checks, worked out from the profiles' definitions, decide a"
          + " resource's errors and warnings where they can, as the validator gives them, and HAPI's validator checks"
          + " every other resource; information notes and codes not checkable offline are listed for the resources"
          + " the validator checked only. full: the validator checks every resource.")
  Mode mode;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  private final long[] bySeverity = new long[Severity.values().length];
  private long unavailable;
  private long resources;
  private long invalidResources;
  private long decided;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    List<Path> definitions = new ArrayList<>(packages);
    List<String> profileUrls = new ArrayList<>();
    for (String p : profiles) {
      if (p.contains("://") || p.startsWith("urn:")) {
        profileUrls.add(p);
        continue;
      }
      Path file = Path.of(p);
      if (!Files.isRegularFile(file)) {
        throw new InputException("--profile " + p + ": neither a canonical URL nor a file");
      }
      try {
        profileUrls.add(FhirValidation.profileUrl(file));
      } catch (IllegalArgumentException e) {
        throw new InputException("--profile " + e.getMessage(), e);
      }
      definitions.add(file);
    }
    for (Path d : definitions) {
      if (!Files.exists(d)) {
        throw new InputException("no such file or folder: " + d);
      }
    }
    List<Path> files = inputFiles();
    long start = System.nanoTime();
    FhirValidation validation;
    CompiledChecks compiled = null;
    try {
      if (mode == Mode.full) {
        validation = FhirValidation.build(definitions);
      } else {
        // The validator itself is built on the first resource the compiled checks do not decide.
        validation = FhirValidation.definitions(definitions);
        compiled = new CompiledChecks(validation);
      }
    } catch (IllegalArgumentException | IllegalStateException e) {
      throw new InputException(e.getMessage(), e);
    }
    double startup = (System.nanoTime() - start) / 1e9;
    long validateStart = System.nanoTime();
    try (JsonGenerator oo = outcome == null ? null : startOutcome()) {
      List<String> where = new ArrayList<>();
      List<String> batch = new ArrayList<>();
      for (Path f : files) {
        String lower = f.getFileName().toString().toLowerCase(Locale.ROOT);
        if (lower.endsWith(".ndjson") || lower.endsWith(".ndjson.gz")) {
          // Strict decoding, as Files.newBufferedReader does: bytes that are not UTF-8 are an error.
          try (BufferedReader in = new BufferedReader(new java.io.InputStreamReader(lower.endsWith(".gz")
              ? new java.util.zip.GZIPInputStream(Files.newInputStream(f), 1 << 16) : Files.newInputStream(f),
              StandardCharsets.UTF_8.newDecoder()))) {
            String line;
            for (int n = 1; (line = in.readLine()) != null; n++) {
              if (!line.isBlank()) {
                where.add(f + ":" + n);
                batch.add(line);
                if (batch.size() == BATCH) {
                  report(check(validation, batch, profileUrls, compiled), where, out, oo);
                  batch.clear();
                  where.clear();
                }
              }
            }
          } catch (CharacterCodingException e) {
            throw new InputException(f + " is not UTF-8 text", e);
          }
        } else {
          where.add(f.toString());
          batch.add(new String(Files.readAllBytes(f), StandardCharsets.UTF_8));
        }
      }
      report(check(validation, batch, profileUrls, compiled), where, out, oo);
      if (oo != null) {
        oo.writeEndArray();
        oo.writeEndObject();
      }
    }
    double seconds = (System.nanoTime() - validateStart) / 1e9;

    long errors = bySeverity[Severity.ERROR.ordinal()] + bySeverity[Severity.FATAL.ordinal()];
    out.printf(Locale.ROOT, "%s: %,d resource(s) in %,d file(s), %,d with errors%n", errors > 0 ? "INVALID" : "VALID",
        resources, files.size(), invalidResources);
    out.printf(Locale.ROOT, "  issues: %,d error(s), %,d warning(s), %,d information; %,d not checkable offline"
        + " (terminology-unavailable)%n", errors, bySeverity[Severity.WARNING.ordinal()],
        bySeverity[Severity.INFORMATION.ordinal()], unavailable);
    if (compiled != null) {
      out.printf(Locale.ROOT, "  compiled checks decided %,d resource(s) (their information notes are not listed);"
          + " HAPI's validator checked the other %,d%n", decided, resources - decided);
    }
    out.printf(Locale.ROOT, "  %s %.1f s (%,d definitions loaded besides R4); validation %.1f s"
        + " (%,.0f resources/s)%n", compiled == null ? "validator start-up" : "loading definitions", startup,
        validation.loadedResources(), seconds, seconds > 0 ? resources / seconds : 0);
    if (outcome != null) {
      out.printf("  OperationOutcome: %s%n", outcome);
    }
    return errors > 0 ? FhirBeam.EXIT_RUN_FAILED : 0;
  }

  /** One batch: by the compiled checks where they decide, else by the validator; or by the validator alone. */
  private static List<Verdict> check(FhirValidation validation, List<String> batch, List<String> profiles,
      CompiledChecks compiled) {
    return compiled != null ? validation.checkAll(batch, profiles, compiled)
        : validation.validateAll(batch, profiles).stream().map(issues -> new Verdict(issues, false)).toList();
  }

  /** Prints and counts one batch's issues, in input order, and adds them to the OperationOutcome. */
  private void report(List<Verdict> results, List<String> where, PrintWriter out, JsonGenerator oo)
      throws IOException {
    for (int r = 0; r < results.size(); r++) {
      resources++;
      if (results.get(r).compiled()) {
        decided++;
      }
      boolean invalid = false;
      for (Issue i : results.get(r).issues()) {
        if (oo != null) {
          writeIssue(oo, i, where.get(r));
        }
        if (i.category().equals(Issue.TERMINOLOGY_UNAVAILABLE)) {
          unavailable++;
          continue;
        }
        bySeverity[i.severity().ordinal()]++;
        invalid |= i.severity().isError();
        if (i.severity() != Severity.INFORMATION || information) {
          out.printf(Locale.ROOT, "%s  %s  %s  %s  %s%n", where.get(r), i.severity().code(),
              i.location() == null || i.location().isEmpty() ? "-" : i.location(),
              i.messageId().isEmpty() ? "-" : i.messageId(), i.message());
        }
      }
      if (invalid) {
        invalidResources++;
      }
    }
    out.flush();
  }

  private List<Path> inputFiles() throws IOException {
    List<Path> files = new ArrayList<>();
    for (Path p : paths) {
      if (Files.isDirectory(p)) {
        try (Stream<Path> s = Files.walk(p)) {
          s.filter(f -> Files.isRegularFile(f) && isResourceFile(f)).sorted().forEach(files::add);
        }
      } else if (Files.isRegularFile(p)) {
        files.add(p);
      } else {
        throw new InputException("no such file or folder: " + p);
      }
    }
    return files;
  }

  private static boolean isResourceFile(Path f) {
    String n = f.getFileName().toString().toLowerCase(Locale.ROOT);
    return n.endsWith(".ndjson") || n.endsWith(".ndjson.gz") || n.endsWith(".json") || n.endsWith(".xml");
  }

  private JsonGenerator startOutcome() throws IOException {
    JsonGenerator g = new JsonFactory().createGenerator(outcome.toFile(), JsonEncoding.UTF8);
    g.useDefaultPrettyPrinter();
    g.writeStartObject();
    g.writeStringField("resourceType", "OperationOutcome");
    g.writeArrayFieldStart("issue");
    return g;
  }

  private static void writeIssue(JsonGenerator g, Issue i, String where) throws IOException {
    g.writeStartObject();
    g.writeStringField("severity", i.severity().code());
    g.writeStringField("code", i.category().equals(Issue.TERMINOLOGY_UNAVAILABLE) ? "not-supported"
        : i.severity().isError() ? "invalid" : "informational");
    g.writeObjectFieldStart("details");
    g.writeArrayFieldStart("coding");
    g.writeStartObject();
    g.writeStringField("system", "https://fhirbeam.org/validation/message-id");
    g.writeStringField("code", i.messageId());
    g.writeEndObject();
    g.writeEndArray();
    g.writeStringField("text", i.message());
    g.writeEndObject();
    g.writeStringField("diagnostics", where);
    if (i.location() != null && !i.location().isEmpty()) {
      g.writeArrayFieldStart("expression");
      g.writeString(i.location());
      g.writeEndArray();
    }
    g.writeEndObject();
  }
}
