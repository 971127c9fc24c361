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
 * for Patients, how many died before they were born ({@code birth_before_death}): the definitions of the quality
 * tables of a run that loads DuckDB, over the resources this mapping commits in this run (those tables count a
 * resource type's whole table: earlier runs' rows in {@code append} mode, and every mapping of the type). Reference
 * checks and repeated ids need every
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

  private MeasureResources(CompiledMapping mapping, DuckDbSettings settings, boolean keys) {
    this.mapping = mapping;
    this.settings = settings;
    this.keys = keys;
  }

  /** Measures the parts of {@code mapping}, with an in-memory DuckDB of {@code settings}. */
  public static MeasureResources of(CompiledMapping mapping, DuckDbSettings settings) {
    return new MeasureResources(Objects.requireNonNull(mapping, "mapping"), Objects.requireNonNull(settings,
        "settings"), false);
  }

  /** The same measure, also emitting every resource's id and reference ({@link #KEYS}). */
  public MeasureResources emittingKeys() {
    return new MeasureResources(mapping, settings, true);
  }

  @Override
  public PCollectionTuple expand(PCollection<PartFile> input) {
    PCollectionTuple out = input.apply("Measure", ParDo.of(new MeasureFn(mapping, settings, keys))
        .withOutputTags(PARTS, TupleTagList.of(KEYS)));
    out.get(PARTS).setCoder(SerializableCoder.of(PartFile.class));
    out.get(KEYS).setCoder(KvCoder.of(StringUtf8Coder.of(), StringUtf8Coder.of()));
    return out;
  }

  /** The name of a reference element's check rows, e.g. {@code Condition.encounter.reference}. */
  public static String referenceName(CompiledMapping mapping, CompiledMapping.ValueElement e) {
    return mapping.resourceType() + "." + e.path();
  }

  /** One check of a mapping's resources: its name and element, as the quality figures name them. */
  public record Check(String check, String element) {}

  /**
   * The checks this measure and {@link ResolveReferences} count for {@code mapping} (every one has a row in the
   * report, counted or not): {@code reference_resolves} per reference element (and {@code reference_external}, when
   * the job declares {@code external} targets), {@code not_in_future} per element with a date column, and
   * {@code birth_before_death} for Patients; as the quality tables of a run that loads DuckDB have them.
   */
  public static List<Check> checks(CompiledMapping mapping, boolean external) {
    List<Check> out = new ArrayList<>();
    for (CompiledMapping.ValueElement e : mapping.valueElements()) {
      if (e.reference()) {
        out.add(new Check("reference_resolves", referenceName(mapping, e)));
        if (external) {
          out.add(new Check("reference_external", referenceName(mapping, e)));
        }
      }
    }
    for (CompiledMapping.ValueElement e : dated(mapping)) {
      out.add(new Check("not_in_future", e.path()));
    }
    if (mapping.resourceType().equals("Patient")) {
      out.add(new Check("birth_before_death", "deceasedDateTime"));
    }
    return out;
  }

  /** The value elements of {@code mapping} with a date (or point in time) column. */
  private static List<CompiledMapping.ValueElement> dated(CompiledMapping mapping) {
    return mapping.valueElements().stream().filter(e -> e.column() != null && mapping.flatColumns().stream()
        .anyMatch(f -> f.name().equals(e.column()) && f.temporal())).toList();
  }

  static final class MeasureFn extends DoFn<PartFile, PartFile> {
    private final CompiledMapping mapping;
    private final DuckDbSettings settings;
    private final boolean keys;
    private transient Connection db;

    MeasureFn(CompiledMapping mapping, DuckDbSettings settings, boolean keys) {
      this.mapping = mapping;
      this.settings = settings;
      this.keys = keys;
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
    public void process(@Element PartFile part, MultiOutputReceiver out) {
      // A part without lines has nothing to measure (and the commit deletes its file, which a recomputed stage
      // would not find).
      if (!part.holdsResources() || part.lines() == 0) {
        out.get(PARTS).output(part);
        return;
      }
      try {
        out.get(PARTS).output(part.plus(measure(part, out.get(KEYS))));
      } catch (SQLException e) {
        // DuckDB's message may quote a value of the part: DuckDb.failure keeps only its category.
        throw DuckDb.failure("measuring part " + part.target() + " of mapping " + mapping.name() + " failed", e);
      }
    }

    private Tally measure(PartFile part, OutputReceiver<KV<String, String>> keysOut) throws SQLException {
      String name = mapping.name();
      List<CompiledMapping.ValueElement> elements = mapping.valueElements();
      Tally.Builder tally = Tally.builder();
      boolean patient = mapping.resourceType().equals("Patient");
      ElementPath birth = ElementPath.ofJsonPath("$.birthDate");
      ElementPath death = ElementPath.ofJsonPath("$.deceasedDateTime");
      List<ElementPath> paths = new ArrayList<>();
      paths.add(ElementPath.ofJsonPath("$.id"));
      elements.forEach(e -> paths.add(e.location()));
      if (patient) {
        paths.add(birth);
        paths.add(death);
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
      List<CompiledMapping.ValueElement> dated = dated(mapping);
      for (int i = 0; i < elements.size(); i++) {
        if (dated.contains(elements.get(i))) {
          // ISO dates and date-times compare as text, at any precision (a year alone included).
          temporal.add(i);
          counts.add("count(*) FILTER (WHERE left(v" + i + ", 10) > strftime(current_date, '%Y-%m-%d'))");
        }
      }
      if (patient) {
        values.add(birth.sql("s") + " AS b");
        values.add(death.sql("s") + " AS d");
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
        emitKeys(structs, keysOut);
      }
      return tally.build();
    }

    /** Emits the part's ids ({@code Type/id}, value empty) and references (value {@code mapping/element}). */
    private void emitKeys(String structs, OutputReceiver<KV<String, String>> out) throws SQLException {
      List<CompiledMapping.ValueElement> references = mapping.valueElements().stream()
          .filter(CompiledMapping.ValueElement::reference).toList();
      List<String> columns = new ArrayList<>();
      columns.add(ElementPath.ofJsonPath("$.id").sql("s"));
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
