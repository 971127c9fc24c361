package org.fhirbeam.data;

import java.io.Serializable;
import java.util.Collections;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import org.apache.beam.sdk.metrics.Metrics;

/**
 * Figures a stage counted about the work one output came from, by {@link Counters} name. Tallies travel with the
 * outputs they describe and are added up from the outputs a run committed, so a task that a runner ran twice (a
 * retry, a recomputed stage) counts once: Beam's attempted counters would count it twice.
 */
public final class Tally implements Serializable {
  private static final long serialVersionUID = 1L;

  /** Nothing counted. */
  public static final Tally EMPTY = new Tally(new TreeMap<>());

  private final TreeMap<String, Long> counts;

  private Tally(TreeMap<String, Long> counts) {
    this.counts = counts;
  }

  /** A new tally to count into. */
  public static Builder builder() {
    return new Builder();
  }

  /** One figure. */
  public static Tally of(String name, long count) {
    return builder().add(name, count).build();
  }

  /** The count of {@code name}: 0 when nothing was counted under it. */
  public long get(String name) {
    return counts.getOrDefault(name, 0L);
  }

  /** The counts whose names start with {@code prefix}, by the rest of their names, in name order. */
  public SortedMap<String, Long> withPrefix(String prefix) {
    SortedMap<String, Long> out = new TreeMap<>();
    counts.subMap(prefix, prefix + Character.MAX_VALUE).forEach((k, v) -> out.put(k.substring(prefix.length()), v));
    return out;
  }

  /** Every count, in name order. */
  public Map<String, Long> counts() {
    return Collections.unmodifiableMap(counts);
  }

  /** This tally and {@code other} added up. */
  public Tally plus(Tally other) {
    if (other.counts.isEmpty()) {
      return this;
    }
    if (counts.isEmpty()) {
      return other;
    }
    TreeMap<String, Long> sum = new TreeMap<>(counts);
    other.counts.forEach((k, v) -> sum.merge(k, v, Long::sum));
    return new Tally(sum);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Tally t && t.counts.equals(counts);
  }

  @Override
  public int hashCode() {
    return counts.hashCode();
  }

  @Override
  public String toString() {
    return counts.toString();
  }

  /** Counts into a tally, and into the Beam counter of the same name that shows a run's progress as it goes. */
  public static final class Builder {
    private final TreeMap<String, Long> counts = new TreeMap<>();

    private Builder() {}

    /** Adds {@code count} to {@code name} here only; a count of 0 is kept (a check that looked at nothing). */
    public Builder add(String name, long count) {
      counts.merge(name, count, Long::sum);
      return this;
    }

    /**
     * Adds {@code count} to {@code name} here and to its Beam counter; call it on the element's thread (Beam's metrics
     * belong to it).
     */
    public Builder count(String name, long count) {
      Metrics.counter(Counters.NAMESPACE, name).inc(count);
      return add(name, count);
    }

    public Tally build() {
      return counts.isEmpty() ? EMPTY : new Tally(new TreeMap<>(counts));
    }
  }
}
