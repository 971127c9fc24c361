package org.fhirbeam.quality;

import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.CoderRegistry;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;

/**
 * The checks that need every resource of a run, from the ids and references {@link MeasureResources} emitted, combined
 * by key: a reference resolves when some resource of the run has it as {@code Type/id}
 * ({@code reference_resolves}, by mapping and element); one that does not, but starts with a declared external
 * prefix ({@code Practitioner/}, {@code https://...}), is counted apart ({@code reference_external}); and every
 * resource beyond the first with one {@code Type/id} is a repeated id ({@link Counters#repeatedIds}). The
 * definitions of the quality tables of a run that loads DuckDB, over the resources this run commits. Each key is
 * combined into a count of ids and a count per referencing element (not grouped: an Organization that millions of
 * Encounters name would hold them all in one worker's memory).
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
    return input.apply("CountByTarget", Combine.perKey(new CountFn()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), SerializableCoder.of(Target.class)))
        .apply("Resolve", ParDo.of(new ResolveFn(externalPrefixes)))
        .setCoder(SerializableCoder.of(Tally.class));
  }

  /** What points at one key: how many resources have it as their id, and how many references each element holds. */
  static final class Target implements Serializable {
    private static final long serialVersionUID = 1L;
    long ids;
    /** By {@code mapping/element}. */
    final TreeMap<String, Long> references = new TreeMap<>();
  }

  /** Counts an id (an empty value) or a reference ({@code mapping/element}) into a {@link Target}. */
  static final class CountFn extends Combine.CombineFn<String, Target, Target> {
    @Override
    public Target createAccumulator() {
      return new Target();
    }

    @Override
    public Target addInput(Target t, String value) {
      if (value.isEmpty()) {
        t.ids++;
      } else {
        t.references.merge(value, 1L, Long::sum);
      }
      return t;
    }

    @Override
    public Target mergeAccumulators(Iterable<Target> targets) {
      Target sum = new Target();
      for (Target t : targets) {
        sum.ids += t.ids;
        t.references.forEach((k, v) -> sum.references.merge(k, v, Long::sum));
      }
      return sum;
    }

    @Override
    public Target extractOutput(Target t) {
      return t;
    }

    @Override
    public Coder<Target> getAccumulatorCoder(CoderRegistry registry, Coder<String> input) {
      return SerializableCoder.of(Target.class);
    }
  }

  static final class ResolveFn extends DoFn<KV<String, Target>, Tally> {
    private final List<String> externalPrefixes;

    ResolveFn(List<String> externalPrefixes) {
      this.externalPrefixes = externalPrefixes;
    }

    @ProcessElement
    public void process(@Element KV<String, Target> target, OutputReceiver<Tally> out) {
      String key = target.getKey();
      long ids = target.getValue().ids;
      boolean external = ids == 0 && externalPrefixes.stream().anyMatch(key::startsWith);
      Tally.Builder tally = Tally.builder();
      if (ids > 1) {
        tally.add(Counters.repeatedIds(key.substring(0, key.indexOf('/'))), ids - 1);
      }
      for (Map.Entry<String, Long> e : target.getValue().references.entrySet()) {
        // mapping/element: a mapping's name holds no '/'
        int slash = e.getKey().indexOf('/');
        String mapping = e.getKey().substring(0, slash);
        String element = e.getKey().substring(slash + 1);
        if (external) {
          tally.add(Counters.checkTotal(mapping, "reference_external", element), e.getValue());
        } else {
          tally.add(Counters.checkFailed(mapping, "reference_resolves", element), ids == 0 ? e.getValue() : 0)
              .add(Counters.checkTotal(mapping, "reference_resolves", element), e.getValue());
        }
      }
      Tally t = tally.build();
      if (!t.counts().isEmpty()) {
        out.output(t);
      }
    }
  }
}
