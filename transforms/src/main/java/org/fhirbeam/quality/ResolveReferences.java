package org.fhirbeam.quality;

import java.util.List;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.GroupByKey;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;

/**
 * The checks that need every resource of a run, from the ids and references {@link MeasureResources} emitted, grouped
 * by key: a reference resolves when some resource of the run has it as {@code Type/id}
 * ({@code reference_resolves}, by mapping and element); one that does not, but starts with a declared external
 * prefix ({@code Practitioner/}, {@code https://...}), is counted apart ({@code reference_external}); and every
 * resource beyond the first with one {@code Type/id} is a repeated id ({@link Counters#repeatedIds}). The same
 * definitions as the quality tables of a run that loads DuckDB, over the resources this run commits.
 */
public final class ResolveReferences extends PTransform<PCollection<KV<String, String>>, PCollection<Tally>> {
  private final List<String> externalPrefixes;

  private ResolveReferences(List<String> externalPrefixes) {
    this.externalPrefixes = List.copyOf(externalPrefixes);
  }

  /** Resolves references, counting those to {@code externalPrefixes} apart. */
  public static ResolveReferences of(List<String> externalPrefixes) {
    return new ResolveReferences(externalPrefixes);
  }

  @Override
  public PCollection<Tally> expand(PCollection<KV<String, String>> input) {
    return input.apply("GroupByTarget", GroupByKey.create())
        .apply("Resolve", ParDo.of(new ResolveFn(externalPrefixes)))
        .setCoder(SerializableCoder.of(Tally.class));
  }

  static final class ResolveFn extends DoFn<KV<String, Iterable<String>>, Tally> {
    private final List<String> externalPrefixes;

    ResolveFn(List<String> externalPrefixes) {
      this.externalPrefixes = externalPrefixes;
    }

    @ProcessElement
    public void process(@Element KV<String, Iterable<String>> target, OutputReceiver<Tally> out) {
      long ids = 0;
      for (String v : target.getValue()) {
        if (v.isEmpty()) {
          ids++;
        }
      }
      String key = target.getKey();
      boolean external = ids == 0 && externalPrefixes.stream().anyMatch(key::startsWith);
      Tally.Builder tally = Tally.builder();
      if (ids > 1) {
        tally.add(Counters.repeatedIds(key.substring(0, key.indexOf('/'))), ids - 1);
      }
      for (String v : target.getValue()) {
        if (v.isEmpty()) {
          continue;
        }
        // mapping/element: a mapping's name holds no '/'
        int slash = v.indexOf('/');
        String mapping = v.substring(0, slash);
        String element = v.substring(slash + 1);
        if (external) {
          tally.add(Counters.checkTotal(mapping, "reference_external", element), 1);
        } else {
          tally.add(Counters.checkFailed(mapping, "reference_resolves", element), ids == 0 ? 1 : 0)
              .add(Counters.checkTotal(mapping, "reference_resolves", element), 1);
        }
      }
      Tally t = tally.build();
      if (!t.counts().isEmpty()) {
        out.output(t);
      }
    }
  }
}
