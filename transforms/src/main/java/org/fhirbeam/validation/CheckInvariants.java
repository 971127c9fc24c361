package org.fhirbeam.validation;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.fhirpath.IFhirPath;
import ca.uhn.fhir.parser.IParser;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.transforms.FhirPathCheck;
import org.fhirbeam.transforms.ResourceFilter;
import org.fhirbeam.transforms.ResourceRejects;
import org.hl7.fhir.instance.model.api.IBase;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.instance.model.api.IPrimitiveType;

/**
 * The profiles' invariants of a mapping that the compiled checks could not turn into SQL ({@link FhirPathCheck}),
 * evaluated with HAPI's FHIRPath engine on each resource of its parts, on every element they apply to; the validator
 * is never built. A resource where one is not true (the first, in order) leaves its part and becomes a reject record
 * of stage {@code validation} with the element's location, the validator's message id and message, and the resource.
 * An invariant the engine cannot evaluate on a resource (it throws) is not held against it. Other parts pass through.
 */
public final class CheckInvariants extends PTransform<PCollection<PartFile>, PCollection<PartFile>> {
  private final String mapping;
  private final String source;
  private final List<FhirPathCheck> checks;
  private final String runId;

  private CheckInvariants(String mapping, String source, List<FhirPathCheck> checks, String runId) {
    this.mapping = mapping;
    this.source = source;
    this.checks = checks;
    this.runId = runId;
  }

  /** The invariants of one mapping: at least one. */
  public static CheckInvariants of(String mapping, String source, List<FhirPathCheck> checks) {
    Objects.requireNonNull(mapping, "mapping");
    Objects.requireNonNull(source, "source");
    if (checks == null || checks.isEmpty()) {
      throw new IllegalArgumentException("at least one invariant is required");
    }
    return new CheckInvariants(mapping, source, List.copyOf(checks), null);
  }

  /** The run id written into every reject record. */
  public CheckInvariants withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new CheckInvariants(mapping, source, checks, runId);
  }

  @Override
  public PCollection<PartFile> expand(PCollection<PartFile> input) {
    if (runId == null) {
      throw new IllegalStateException("withRunId() is required");
    }
    return input.apply("CheckParts", ParDo.of(new CheckFn(mapping, source, checks, runId)))
        .setCoder(SerializableCoder.of(PartFile.class));
  }

  /** Where an invariant failed: the element's location, and which. */
  private record Failure(String location, FhirPathCheck check) {}

  static final class CheckFn extends DoFn<PartFile, PartFile> {
    private final String mapping;
    private final String source;
    private final List<FhirPathCheck> checks;
    private final String runId;
    private transient IParser parser;
    private transient IFhirPath fhirPath;
    private transient List<List<IFhirPath.IParsedExpression>> steps;
    private transient List<IFhirPath.IParsedExpression> expressions;
    private transient JsonFactory json;

    CheckFn(String mapping, String source, List<FhirPathCheck> checks, String runId) {
      this.mapping = mapping;
      this.source = source;
      this.checks = checks;
      this.runId = runId;
    }

    @Setup
    public void setup() throws Exception {
      FhirContext ctx = FhirContext.forR4Cached();
      parser = ctx.newJsonParser();
      // One engine per worker thread: HAPI's FHIRPath engine keeps state while it evaluates.
      fhirPath = ctx.newFhirPath();
      steps = new ArrayList<>();
      expressions = new ArrayList<>();
      for (FhirPathCheck c : checks) {
        List<IFhirPath.IParsedExpression> path = new ArrayList<>();
        for (FhirPathCheck.Step s : c.steps()) {
          path.add(fhirPath.parse(s.name()));
        }
        steps.add(path);
        expressions.add(fhirPath.parse(c.expression()));
      }
      json = new JsonFactory();
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<PartFile> out) throws IOException {
      if (!part.holdsResources()) {
        out.output(part);
        return;
      }
      Tally.Builder tally = Tally.builder();
      ResourceFilter.Filtered filtered = ResourceFilter.filter(part, "invariants", (line, number) -> {
        IBaseResource resource;
        try {
          resource = parser.parseResource(line);
        } catch (ca.uhn.fhir.parser.DataFormatException e) {
          throw new IllegalStateException("mapping " + mapping + ": line " + number + " of " + part.path()
              + " is not a resource HAPI can read, so its invariants cannot be checked");
        }
        Failure failure = firstFailure(resource);
        if (failure == null) {
          return null;
        }
        String rule = failure.check().messageId();
        tally.add(Counters.validatorRejected(mapping, rule), 1).add(Counters.issue(mapping, "error", "content", rule),
            1);
        StringWriter s = new StringWriter();
        try (JsonGenerator g = json.createGenerator(s)) {
          ResourceRejects.start(g, runId, source, "validation", mapping, failure.location(), rule,
              failure.check().message(), resource.getIdElement().getIdPart());
          ResourceRejects.end(g, line);
        }
        return s.toString();
      });
      tally.count(Counters.invalid(mapping), filtered.rejected()).count(Counters.rejected(mapping),
          filtered.rejected());
      filtered.output("validation", tally.build(), out::output);
    }

    /** The first invariant that is not true on an element it applies to, with that element's location. */
    private Failure firstFailure(IBaseResource resource) {
      for (int c = 0; c < checks.size(); c++) {
        List<String> locations = new ArrayList<>();
        List<IBase> elements = new ArrayList<>();
        instances(resource, resource.fhirType(), c, 0, elements, locations);
        for (int i = 0; i < elements.size(); i++) {
          if (!holds(elements.get(i), expressions.get(c))) {
            return new Failure(locations.get(i), checks.get(c));
          }
        }
      }
      return null;
    }

    /** The elements at check {@code c}'s path below {@code node} from step {@code k}, with their locations. */
    private void instances(IBase node, String location, int c, int k, List<IBase> out, List<String> locations) {
      if (k == steps.get(c).size()) {
        out.add(node);
        locations.add(location);
        return;
      }
      FhirPathCheck.Step step = checks.get(c).steps().get(k);
      List<IBase> children = fhirPath.evaluate(node, steps.get(c).get(k), IBase.class);
      for (int i = 0; i < children.size(); i++) {
        instances(children.get(i), location + "." + step.name() + (step.repeating() ? "[" + i + "]" : ""), c, k + 1,
            out, locations);
      }
    }

    /**
     * Whether the invariant gives {@code true} on the element, as the validator has it (empty or false fail). One the
     * engine cannot evaluate here holds: the compiled checks do not claim what they cannot work out.
     */
    private boolean holds(IBase element, IFhirPath.IParsedExpression expression) {
      try {
        List<IBase> result = fhirPath.evaluate(element, expression, IBase.class);
        return result.size() == 1 && result.get(0) instanceof IPrimitiveType<?> p
            && Boolean.TRUE.equals(p.getValue());
      } catch (RuntimeException e) {
        return true;
      }
    }
  }
}
