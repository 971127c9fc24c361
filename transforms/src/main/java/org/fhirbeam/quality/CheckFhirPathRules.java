package org.fhirbeam.quality;

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
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.QualityRule;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.transforms.ResourceFilter;
import org.fhirbeam.transforms.ResourceRejects;
import org.hl7.fhir.instance.model.api.IBase;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.instance.model.api.IPrimitiveType;

/**
 * Checks a mapping's FHIRPath rules on the resources in its part files ({@code fhir/...}) and passes every other
 * part through. Each resource is parsed once by HAPI and every rule, compiled once per worker, is evaluated on it;
 * a rule holds when its expression gives {@code true} (empty, false or anything else is a failure). A resource
 * that breaks a {@code reject} rule (the first, in file order) leaves the part and becomes one reject record
 * (stage {@code quality}, rule = the rule's name) holding the resource. {@code warn} rules are counted on the
 * resources that stay: {@link Counters#checkFailed} and {@link Counters#checkTotal}. Rejected resources are counted
 * in {@link Counters#ruleRejected} and {@link Counters#rejected}, every resource read in {@link Counters#checked}.
 */
public final class CheckFhirPathRules extends PTransform<PCollection<PartFile>, PCollection<PartFile>> {
  private final String mapping;
  private final String source;
  private final String resourceType;
  private final List<QualityRule> rules;
  private final String runId;

  private CheckFhirPathRules(String mapping, String source, String resourceType, List<QualityRule> rules,
      String runId) {
    this.mapping = mapping;
    this.source = source;
    this.resourceType = resourceType;
    this.rules = rules;
    this.runId = runId;
  }

  /** The FHIRPath rules of one mapping; {@code rules} must be FHIRPath rules, at least one. */
  public static CheckFhirPathRules of(String mapping, String source, String resourceType, List<QualityRule> rules) {
    Objects.requireNonNull(mapping, "mapping");
    Objects.requireNonNull(source, "source");
    Objects.requireNonNull(resourceType, "resourceType");
    if (rules == null || rules.isEmpty() || rules.stream().anyMatch(QualityRule::isSql)) {
      throw new IllegalArgumentException("at least one rule, and only FHIRPath rules, are required");
    }
    return new CheckFhirPathRules(mapping, source, resourceType, List.copyOf(rules), null);
  }

  /** The run id written into every reject record. */
  public CheckFhirPathRules withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new CheckFhirPathRules(mapping, source, resourceType, rules, runId);
  }

  @Override
  public PCollection<PartFile> expand(PCollection<PartFile> input) {
    if (runId == null) {
      throw new IllegalStateException("withRunId() is required");
    }
    return input.apply("CheckParts", ParDo.of(new CheckFn(mapping, source, resourceType, rules, runId)))
        .setCoder(SerializableCoder.of(PartFile.class));
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("mapping", mapping)).add(DisplayData.item("rules", rules.size()));
  }

  static final class CheckFn extends DoFn<PartFile, PartFile> {
    private final String mapping;
    private final String source;
    private final String resourceType;
    private final List<QualityRule> rules;
    private final String runId;
    private transient IParser parser;
    private transient IFhirPath fhirPath;
    private transient List<IFhirPath.IParsedExpression> expressions;
    private transient JsonFactory json;

    CheckFn(String mapping, String source, String resourceType, List<QualityRule> rules, String runId) {
      this.mapping = mapping;
      this.source = source;
      this.resourceType = resourceType;
      this.rules = rules;
      this.runId = runId;
    }

    @Setup
    public void setup() throws Exception {
      FhirContext ctx = FhirContext.forR4Cached();
      parser = ctx.newJsonParser();
      // One engine per worker thread: HAPI's FHIRPath engine keeps state while it evaluates.
      fhirPath = ctx.newFhirPath();
      expressions = new ArrayList<>();
      for (QualityRule r : rules) {
        expressions.add(fhirPath.parse(r.fhirPath())); // checked when the mapping was compiled
      }
      json = new JsonFactory();
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<PartFile> out) throws IOException {
      if (!part.holdsResources()) {
        out.output(part);
        return;
      }
      long[] failed = new long[rules.size()];
      long[] total = new long[1];
      ResourceFilter.Filtered filtered = ResourceFilter.filter(part, "rules", (line, number) -> {
        IBaseResource resource;
        try {
          resource = parser.parseResource(line);
        } catch (ca.uhn.fhir.parser.DataFormatException e) {
          // HAPI's message may quote the resource: the part and line say where, without the values.
          throw new IllegalStateException("mapping " + mapping + ": line " + number + " of " + part.path()
              + " is not a resource HAPI can read, so its FHIRPath rules cannot run");
        }
        for (int r = 0; r < rules.size(); r++) {
          if (rules.get(r).severity() == QualityRule.Severity.REJECT && !holds(resource, r)) {
            return rejectRecord(line, resource, rules.get(r));
          }
        }
        total[0]++;
        for (int r = 0; r < rules.size(); r++) {
          if (rules.get(r).severity() == QualityRule.Severity.WARN && !holds(resource, r)) {
            failed[r]++;
          }
        }
        return null;
      });
      Tally.Builder tally = Tally.builder();
      for (int r = 0; r < rules.size(); r++) {
        if (rules.get(r).severity() == QualityRule.Severity.WARN) {
          tally.count(Counters.checkFailed(mapping, rules.get(r).name(), ""), failed[r]);
          tally.count(Counters.checkTotal(mapping, rules.get(r).name(), ""), total[0]);
        }
      }
      Metrics.counter(Counters.NAMESPACE, Counters.checked(Counters.RULES, mapping)).inc(filtered.lines());
      tally.count(Counters.ruleRejected(mapping), filtered.rejected()).count(Counters.rejected(mapping),
          filtered.rejected());
      filtered.output("quality", tally.build(), out::output);
    }

    /**
     * Whether rule {@code r} gives {@code true} on the resource. An expression that cannot be evaluated on it fails
     * the rule; the engine's message is not kept, since it may quote the resource.
     */
    private boolean holds(IBaseResource resource, int r) {
      try {
        List<IBase> result = fhirPath.evaluate(resource, expressions.get(r), IBase.class);
        return result.size() == 1 && result.get(0) instanceof IPrimitiveType<?> p
            && Boolean.TRUE.equals(p.getValue());
      } catch (RuntimeException e) {
        return false;
      }
    }

    private String rejectRecord(String line, IBaseResource resource, QualityRule rule) throws IOException {
      StringWriter s = new StringWriter();
      try (JsonGenerator g = json.createGenerator(s)) {
        ResourceRejects.start(g, runId, source, "quality", mapping, resourceType, rule.name(),
            "the resource does not meet the rule's FHIRPath invariant: " + rule.fhirPath(),
            resource.getIdElement().getIdPart());
        ResourceRejects.end(g, line);
      }
      return s.toString();
    }
  }
}
