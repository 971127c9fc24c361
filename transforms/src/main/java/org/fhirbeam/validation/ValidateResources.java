package org.fhirbeam.validation;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.ValidationSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.transforms.ResourceRejects;

/**
 * Validates the resources in a mapping's part files ({@code fhir/...}) and passes every other part through. Per
 * resource part, the resources chosen by the mode ({@code full}: all; {@code sample}: a stable share picked by a
 * hash of the resource text, so a re-run picks the same ones) are validated, several at a time on the worker's
 * cores. A resource with an issue at or above the reject level leaves the part and becomes one reject record
 * (stage {@code validation}) listing those issues and holding the resource. Counted per mapping:
 * {@link Counters#checked} (every resource read, sampled or not), {@link Counters#validated}, {@link Counters#invalid}
 * (also added to {@link Counters#rejected}), and every issue
 * by resource type, severity, category and message id ({@link Counters#issue}).
 */
public final class ValidateResources extends PTransform<PCollection<PartFile>, PCollection<PartFile>> {
  private final String mapping;
  private final String source;
  private final ValidationSettings settings;
  private final String runId;

  private ValidateResources(String mapping, String source, ValidationSettings settings, String runId) {
    this.mapping = mapping;
    this.source = source;
    this.settings = settings;
    this.runId = runId;
  }

  /** Validation of one mapping's resources; {@code settings} must not be {@code off}. */
  public static ValidateResources of(String mapping, String source, ValidationSettings settings) {
    Objects.requireNonNull(mapping, "mapping");
    Objects.requireNonNull(source, "source");
    if (!Objects.requireNonNull(settings, "settings").enabled()) {
      throw new IllegalArgumentException("validation mode is off");
    }
    return new ValidateResources(mapping, source, settings, null);
  }

  /** The run id written into every reject record. */
  public ValidateResources withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new ValidateResources(mapping, source, settings, runId);
  }

  @Override
  public PCollection<PartFile> expand(PCollection<PartFile> input) {
    if (runId == null) {
      throw new IllegalStateException("withRunId() is required");
    }
    return input.apply("ValidateParts", ParDo.of(new ValidateFn(mapping, source, settings, runId)))
        .setCoder(SerializableCoder.of(PartFile.class));
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("mapping", mapping))
        .add(DisplayData.item("mode", settings.mode().name().toLowerCase(Locale.ROOT)))
        .add(DisplayData.item("rejectOn", settings.rejectOn().name().toLowerCase(Locale.ROOT)));
    if (settings.mode() == ValidationSettings.Mode.SAMPLE) {
      builder.add(DisplayData.item("sampleRate", settings.sampleRate()));
    }
  }

  /** Whether a resource is in the sample: a stable function of its text, the same on every run and runner. */
  static boolean sampled(String resource, double rate) {
    if (rate >= 1) {
      return true;
    }
    long h = resource.hashCode() * 0x9E3779B97F4A7C15L;
    h ^= h >>> 29;
    return Long.remainderUnsigned(h, 1_000_000) < Math.round(rate * 1_000_000);
  }

  /**
   * The quality check of {@code sample} mode: of the sampled resources (which passed the compiled checks), those
   * HAPI's validator finds errors in are failures.
   */
  public static final String AGREEMENT_CHECK = "validator_agrees";

  static final class ValidateFn extends DoFn<PartFile, PartFile> {
    private static final int BATCH = 256;

    private final String mapping;
    private final String source;
    private final ValidationSettings settings;
    private final String runId;
    private transient FhirValidation validation;
    private transient JsonFactory json;

    ValidateFn(String mapping, String source, ValidationSettings settings, String runId) {
      this.mapping = mapping;
      this.source = source;
      this.settings = settings;
      this.runId = runId;
    }

    @Setup
    public void setup() {
      validation = FhirValidation.shared(settings.packages().stream().map(Path::of).toList());
      json = new JsonFactory();
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<PartFile> out) throws IOException {
      if (!part.holdsResources()) {
        out.output(part);
        return;
      }
      Path file = Path.of(part.path());
      String name = part.resourcePartName();
      Path rejectsFile = PartFile.beside(part.path(), "validation-rejects");
      Tally.Builder tally = Tally.builder();
      BitSet rejectedLines = new BitSet();
      long validated = 0;
      long lines = 0;
      try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8);
          BufferedWriter rejects = Files.newBufferedWriter(rejectsFile, StandardCharsets.UTF_8)) {
        List<Integer> batchLines = new ArrayList<>();
        List<String> batch = new ArrayList<>();
        String line;
        while (true) {
          line = in.readLine();
          if (line != null) {
            if (settings.mode() == ValidationSettings.Mode.FULL || sampled(line, settings.sampleRate())) {
              batchLines.add((int) lines);
              batch.add(line);
            }
            lines++;
          }
          if (batch.size() == BATCH || (line == null && !batch.isEmpty())) {
            validated += batch.size();
            List<List<FhirValidation.Issue>> results = validation.validateAll(batch, settings.profiles());
            for (int i = 0; i < batch.size(); i++) {
              List<FhirValidation.Issue> rejecting = count(results.get(i), tally);
              if (settings.compiled()) {
                // The compiled checks passed this resource: an error here is a hole in them.
                boolean disagrees = results.get(i).stream().anyMatch(x -> x.severity().isError()
                    && x.category().equals(FhirValidation.Issue.CONTENT));
                tally.count(Counters.checkFailed(mapping, AGREEMENT_CHECK, ""), disagrees ? 1 : 0)
                    .count(Counters.checkTotal(mapping, AGREEMENT_CHECK, ""), 1);
              }
              if (!rejecting.isEmpty()) {
                tally.add(Counters.validatorRejected(mapping, rejecting.get(0).messageId()), 1);
                rejectedLines.set(batchLines.get(i));
                rejects.write(rejectRecord(batch.get(i), rejecting));
                rejects.newLine();
              }
            }
            batch.clear();
            batchLines.clear();
          }
          if (line == null) {
            break;
          }
        }
      }
      int invalid = rejectedLines.cardinality();
      Metrics.counter(Counters.NAMESPACE, Counters.checked(Counters.VALIDATION, mapping)).inc(lines);
      tally.count(Counters.validated(mapping), validated).count(Counters.invalid(mapping), invalid)
          .count(Counters.rejected(mapping), invalid);
      if (invalid == 0) {
        Files.delete(rejectsFile);
        out.output(part.plus(tally.build()));
        return;
      }
      Path kept = PartFile.beside(part.path(), "valid");
      try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8);
          BufferedWriter w = Files.newBufferedWriter(kept, StandardCharsets.UTF_8)) {
        String line;
        for (int i = 0; (line = in.readLine()) != null; i++) {
          if (!rejectedLines.get(i)) {
            w.write(line);
            w.newLine();
          }
        }
      }
      // The input part stays (a retried bundle reads it again); the staging directory goes at the end of the run.
      out.output(new PartFile(part.target(), kept.toString(), lines - invalid, part.tally()));
      out.output(PartFile.rejects(name, "validation", rejectsFile.toString(), invalid).plus(tally.build()));
    }

    /** Counts every issue and returns those that reject the resource. */
    private List<FhirValidation.Issue> count(List<FhirValidation.Issue> issues, Tally.Builder tally) {
      List<FhirValidation.Issue> rejecting = new ArrayList<>();
      for (FhirValidation.Issue i : issues) {
        tally.add(Counters.issue(mapping, i.severity().code(), i.category(), i.messageId()), 1);
        if (rejects(i)) {
          rejecting.add(i);
        }
      }
      return rejecting;
    }

    private boolean rejects(FhirValidation.Issue i) {
      if (i.category().equals(FhirValidation.Issue.TERMINOLOGY_UNAVAILABLE)) {
        return false;
      }
      return switch (settings.rejectOn()) {
        case ERROR -> i.severity().isError();
        case WARNING -> i.severity() != FhirValidation.Severity.INFORMATION;
        case NEVER -> false;
      };
    }

    private String rejectRecord(String resource, List<FhirValidation.Issue> issues) throws IOException {
      StringWriter s = new StringWriter();
      FhirValidation.Issue first = issues.get(0);
      try (JsonGenerator g = json.createGenerator(s)) {
        ResourceRejects.start(g, runId, source, "validation", mapping, first.location(), first.messageId(),
            first.message(), idOf(resource));
        g.writeArrayFieldStart("issues");
        for (FhirValidation.Issue i : issues) {
          g.writeStartObject();
          g.writeStringField("severity", i.severity().code());
          g.writeStringField("location", i.location());
          g.writeStringField("message_id", i.messageId());
          g.writeStringField("message", i.message());
          g.writeEndObject();
        }
        g.writeEndArray();
        ResourceRejects.end(g, resource);
      }
      return s.toString();
    }

    /** The resource's top-level id, read without building the resource. */
    private String idOf(String resource) throws IOException {
      try (JsonParser p = json.createParser(resource)) {
        if (p.nextToken() != JsonToken.START_OBJECT) {
          return null;
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String field = p.currentName();
          JsonToken t = p.nextToken();
          if (field.equals("id") && t == JsonToken.VALUE_STRING) {
            return p.getText();
          }
          p.skipChildren();
        }
      } catch (IOException | UncheckedIOException e) {
        return null;
      }
      return null;
    }
  }
}
