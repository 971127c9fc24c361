package org.fhirbeam.quality;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.ElementPath;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.transforms.CompiledMapping;

/**
 * Measures the resources one mapping is about to commit, for the quality figures of a run that has no DuckDB load to
 * compute them from its tables (a run committed by a manifest). One DuckDB query per resource part counts how many
 * resources have a value in each of the mapping's value elements ({@link Counters#populated} of
 * {@link Counters#measured}), how many values of its date elements lie after today (check {@code not_in_future}) and,
 * for Patients, how many died before they were born ({@code birth_before_death}): the same figures, by the same
 * definitions, as the quality tables of a run that loads DuckDB. Reference checks and repeated ids need every
 * resource of the run: when asked ({@link #emittingKeys}), each part's ids ({@code Type/id}, value empty) and
 * references (value {@code mapping/element}) go out as keyed records for {@link ResolveReferences}. The figures ride
 * on the part they describe, so a retried task counts once; reject parts pass through.
 */
public final class MeasureResources extends PTransform<PCollection<PartFile>, PCollectionTuple> {
  /** The parts, resource parts carrying their figures. */
  public static final TupleTag<PartFile> PARTS = new TupleTag<>() {};
  /** Ids and references, when emitted. */
  public static final TupleTag<KV<String, String>> KEYS = new TupleTag<>() {};

  private final CompiledMapping mapping;
  private final DuckDbSettings settings;
  private final boolean keys;
  private final boolean external;

  private MeasureResources(CompiledMapping mapping, DuckDbSettings settings, boolean keys, boolean external) {
    this.mapping = mapping;
    this.settings = settings;
    this.keys = keys;
    this.external = external;
  }

  /** Measures the parts of {@code mapping}, with an in-memory DuckDB of {@code settings}. */
  public static MeasureResources of(CompiledMapping mapping, DuckDbSettings settings) {
    return new MeasureResources(Objects.requireNonNull(mapping, "mapping"), Objects.requireNonNull(settings,
        "settings"), false, false);
  }

  /**
   * The same measure, also emitting every resource's id and reference ({@link #KEYS}); with {@code external}, the
   * job declares external reference targets, so a reference check of each element is also counted as
   * {@code reference_external}.
   */
  public MeasureResources emittingKeys(boolean external) {
    return new MeasureResources(mapping, settings, true, external);
  }

  @Override
  public PCollectionTuple expand(PCollection<PartFile> input) {
    PCollectionTuple out = input.apply("Measure", ParDo.of(new MeasureFn(mapping, settings, keys, external))
        .withOutputTags(PARTS, TupleTagList.of(KEYS)));
    out.get(PARTS).setCoder(SerializableCoder.of(PartFile.class));
    out.get(KEYS).setCoder(KvCoder.of(StringUtf8Coder.of(), StringUtf8Coder.of()));
    return out;
  }

  /** The name of a reference element's check rows, e.g. {@code Condition.encounter.reference}. */
  public static String referenceName(CompiledMapping mapping, CompiledMapping.ValueElement e) {
    return mapping.resourceType() + "." + e.path();
  }

  static final class MeasureFn extends DoFn<PartFile, PartFile> {
    private final CompiledMapping mapping;
    private final DuckDbSettings settings;
    private final boolean keys;
    private final boolean external;
    private transient Connection db;

    MeasureFn(CompiledMapping mapping, DuckDbSettings settings, boolean keys, boolean external) {
      this.mapping = mapping;
      this.settings = settings;
      this.keys = keys;
      this.external = external;
    }

    @Setup
    public void setup() throws SQLException {
      db = DuckDb.openInMemory(settings);
    }

    @Teardown
    public void teardown() throws SQLException {
      if (db != null) {
        db.close();
        db = null;
      }
    }

    @ProcessElement
    public void process(@Element PartFile part, MultiOutputReceiver out) throws SQLException {
      if (!part.holdsResources()) {
        out.get(PARTS).output(part);
        return;
      }
      String name = mapping.name();
      List<CompiledMapping.ValueElement> elements = mapping.valueElements();
      Tally.Builder tally = Tally.builder();
      // Every check of the mapping has its row, though this part had nothing to check.
      for (CompiledMapping.ValueElement e : elements) {
        if (e.reference()) {
          tally.add(Counters.checkFailed(name, "reference_resolves", referenceName(mapping, e)), 0)
              .add(Counters.checkTotal(name, "reference_resolves", referenceName(mapping, e)), 0);
          if (external) {
            tally.add(Counters.checkFailed(name, "reference_external", referenceName(mapping, e)), 0)
                .add(Counters.checkTotal(name, "reference_external", referenceName(mapping, e)), 0);
          }
        }
      }
      boolean patient = mapping.resourceType().equals("Patient");
      List<ElementPath> paths = new ArrayList<>();
      paths.add(ElementPath.ofJsonPath("$.id"));
      elements.forEach(e -> paths.add(e.location()));
      if (patient) {
        paths.add(ElementPath.ofJsonPath("$.birthDate"));
        paths.add(ElementPath.ofJsonPath("$.deceasedDateTime"));
      }
      String structs = "(SELECT json_transform(json, " + ElementPath.structType(paths) + ") AS s FROM "
          + DuckDbTables.ndjsonObjects(List.of(part.path())) + ")";
      List<String> values = new ArrayList<>();
      List<String> counts = new ArrayList<>();
      counts.add("count(*)");
      for (int i = 0; i < elements.size(); i++) {
        values.add(elements.get(i).location().sql("s") + " AS v" + i);
        counts.add("count(v" + i + ")");
      }
      List<Integer> temporal = new ArrayList<>();
      for (int i = 0; i < elements.size(); i++) {
        CompiledMapping.ValueElement e = elements.get(i);
        boolean date = e.column() != null && mapping.flatColumns().stream()
            .anyMatch(f -> f.name().equals(e.column()) && f.temporal());
        if (date) {
          // ISO dates and date-times compare as text, at any precision (a year alone included).
          temporal.add(i);
          counts.add("count(*) FILTER (WHERE left(v" + i + ", 10) > strftime(current_date, '%Y-%m-%d'))");
        }
      }
      if (patient) {
        values.add("s.birthDate AS b");
        values.add("s.deceasedDateTime AS d");
        counts.add("count(*) FILTER (WHERE b IS NOT NULL AND d IS NOT NULL AND left(d, 10) < b)");
        counts.add("count(*) FILTER (WHERE b IS NOT NULL AND d IS NOT NULL)");
      }
      String measured = "(SELECT " + (values.isEmpty() ? "1 AS one" : String.join(", ", values)) + " FROM " + structs
          + ")";
      try (Statement st = db.createStatement();
          ResultSet rs = st.executeQuery("SELECT " + String.join(", ", counts) + " FROM " + measured)) {
        rs.next();
        int column = 1;
        tally.add(Counters.measured(name), rs.getLong(column++));
        for (int i = 0; i < elements.size(); i++) {
          tally.add(Counters.populated(name, i), rs.getLong(column++));
        }
        for (int i : temporal) {
          String path = elements.get(i).path();
          tally.add(Counters.checkFailed(name, "not_in_future", path), rs.getLong(column++))
              .add(Counters.checkTotal(name, "not_in_future", path), rs.getLong(2 + i)); // count(v<i>)
        }
        if (patient) {
          tally.add(Counters.checkFailed(name, "birth_before_death", "deceasedDateTime"), rs.getLong(column++))
              .add(Counters.checkTotal(name, "birth_before_death", "deceasedDateTime"), rs.getLong(column++));
        }
      }
      if (keys) {
        emitKeys(structs, out.get(KEYS));
      }
      out.get(PARTS).output(part.plus(tally.build()));
    }

    /** Emits the part's ids ({@code Type/id}, value empty) and references (value {@code mapping/element}). */
    private void emitKeys(String structs, OutputReceiver<KV<String, String>> out) throws SQLException {
      List<CompiledMapping.ValueElement> references = mapping.valueElements().stream()
          .filter(CompiledMapping.ValueElement::reference).toList();
      List<String> columns = new ArrayList<>();
      columns.add("s.id");
      references.forEach(e -> columns.add(e.location().sql("s")));
      String prefix = mapping.resourceType() + "/";
      try (Statement st = db.createStatement();
          ResultSet rs = st.executeQuery("SELECT " + String.join(", ", columns) + " FROM " + structs)) {
        while (rs.next()) {
          String id = rs.getString(1);
          if (id != null) {
            out.output(KV.of(prefix + id, ""));
          }
          for (int i = 0; i < references.size(); i++) {
            String ref = rs.getString(i + 2);
            if (ref != null) {
              out.output(KV.of(ref, mapping.name() + "/" + referenceName(mapping, references.get(i))));
            }
          }
        }
      }
    }
  }
}
