package org.fhirbeam.quality;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.StringWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.transforms.join.CoGbkResult;
import org.apache.beam.sdk.transforms.join.CoGroupByKey;
import org.apache.beam.sdk.transforms.join.KeyedPCollectionTuple;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.QualitySettings.DuplicateIds;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.DuckDb;
import org.fhirbeam.io.IdKeys;
import org.fhirbeam.io.PartFile;
import org.fhirbeam.transforms.MapWithDuckDb;
import org.fhirbeam.transforms.ResourceRejects;

/**
 * Finds resources of one type that share an id within a run, across all the mappings and tasks that write the type,
 * from the tasks' {@link IdKeys}. The first resource with an id (in task order, then source position) keeps it; with
 * {@link DuplicateIds#REJECT} every later one leaves its part and becomes a reject of stage {@code quality}, rule
 * {@code duplicate_id}, that names the first one's source location; with {@link DuplicateIds#FAIL} the run fails.
 * Takes {@link MapWithDuckDb}'s output (parts and keys of the type's mappings) and gives each mapping's parts under
 * {@link MapWithDuckDb#partsOf} its name, as the mapping gave them when no id repeats. Duplicates are counted in
 * {@link Counters#duplicates} and {@link Counters#rejected}.
 */
public final class DropDuplicateIds extends PTransform<PCollectionTuple, PCollectionTuple> {
  private static final TupleTag<KV<String, PartFile>> PARTS = new TupleTag<>("parts");
  private static final TupleTag<IdKeys> KEYS = new TupleTag<>("keys");

  private final String resourceType;
  private final List<String> mappings;
  private final DuplicateIds mode;
  private final DuckDbSettings settings;
  private final String runId;

  private DropDuplicateIds(String resourceType, List<String> mappings, DuplicateIds mode, DuckDbSettings settings,
      String runId) {
    this.resourceType = resourceType;
    this.mappings = mappings;
    this.mode = mode;
    this.settings = settings;
    this.runId = runId;
  }

  /** The resources of {@code resourceType} that {@code mappings} (at least one) write. */
  public static DropDuplicateIds of(String resourceType, List<String> mappings) {
    Objects.requireNonNull(resourceType, "resourceType");
    if (mappings == null || mappings.isEmpty()) {
      throw new IllegalArgumentException("at least one mapping is required");
    }
    return new DropDuplicateIds(resourceType, List.copyOf(mappings), DuplicateIds.REJECT, null, null);
  }

  /** {@link DuplicateIds#REJECT} (the default) or {@link DuplicateIds#FAIL}; with KEEP, leave this step out. */
  public DropDuplicateIds withMode(DuplicateIds mode) {
    if (mode == null || mode == DuplicateIds.KEEP) {
      throw new IllegalArgumentException("mode must be REJECT or FAIL (KEEP needs no step)");
    }
    return new DropDuplicateIds(resourceType, mappings, mode, settings, runId);
  }

  /** The DuckDB settings of the database that reads the keys. */
  public DropDuplicateIds withSettings(DuckDbSettings settings) {
    return new DropDuplicateIds(resourceType, mappings, mode, Objects.requireNonNull(settings, "settings"), runId);
  }

  /** The run id written into every reject record. */
  public DropDuplicateIds withRunId(String runId) {
    if (runId == null || runId.isBlank()) {
      throw new IllegalArgumentException("runId must not be empty");
    }
    return new DropDuplicateIds(resourceType, mappings, mode, settings, runId);
  }

  @Override
  public PCollectionTuple expand(PCollectionTuple input) {
    if (settings == null || runId == null) {
      throw new IllegalStateException("withSettings() and withRunId() are required");
    }
    List<PCollection<KV<String, PartFile>>> parts = new ArrayList<>();
    List<PCollection<IdKeys>> keys = new ArrayList<>();
    for (String m : mappings) {
      parts.add(input.get(MapWithDuckDb.partsOf(m)).apply("NameParts" + m, WithKeys.of(m))
          .setCoder(KvCoder.of(StringUtf8Coder.of(), SerializableCoder.of(PartFile.class))));
      keys.add(input.get(MapWithDuckDb.keysOf(m)));
    }
    // Every part and key of the type meets on one worker: they are file names, the keys are read there by DuckDB.
    PCollection<KV<String, KV<String, PartFile>>> byType = PCollectionList.of(parts)
        .apply("CollectParts", Flatten.pCollections())
        .apply("KeyPartsByType", WithKeys.of(resourceType))
        .setCoder(KvCoder.of(StringUtf8Coder.of(),
            KvCoder.of(StringUtf8Coder.of(), SerializableCoder.of(PartFile.class))));
    PCollection<KV<String, IdKeys>> keysByType = PCollectionList.of(keys)
        .apply("CollectKeys", Flatten.pCollections())
        .setCoder(SerializableCoder.of(IdKeys.class))
        .apply("KeyKeysByType", WithKeys.of(resourceType))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), SerializableCoder.of(IdKeys.class)));
    List<TupleTag<PartFile>> tags = mappings.stream().map(MapWithDuckDb::partsOf).toList();
    PCollectionTuple out = KeyedPCollectionTuple.of(PARTS, byType).and(KEYS, keysByType)
        .apply("GroupByType", CoGroupByKey.create())
        .apply("DropDuplicates", ParDo.of(new DropFn(resourceType, mappings, tags, mode, settings, runId))
            .withOutputTags(tags.get(0), TupleTagList.of(new ArrayList<>(tags.subList(1, tags.size())))));
    for (TupleTag<PartFile> tag : tags) {
      out.get(tag).setCoder(SerializableCoder.of(PartFile.class));
    }
    return out;
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("resourceType", resourceType))
        .add(DisplayData.item("mappings", String.join(", ", mappings)))
        .add(DisplayData.item("mode", mode.name()));
  }

  /** A resource that repeats an earlier one's id: its task and position, and the first one's. */
  private record Duplicate(long order, long position, long firstOrder, long firstPosition) {}

  static final class DropFn extends DoFn<KV<String, CoGbkResult>, PartFile> {
    private final String resourceType;
    private final List<String> mappings;
    private final List<TupleTag<PartFile>> tags;
    private final DuplicateIds mode;
    private final DuckDbSettings settings;
    private final String runId;
    private transient JsonFactory json;

    DropFn(String resourceType, List<String> mappings, List<TupleTag<PartFile>> tags, DuplicateIds mode,
        DuckDbSettings settings, String runId) {
      this.resourceType = resourceType;
      this.mappings = mappings;
      this.tags = tags;
      this.mode = mode;
      this.settings = settings;
      this.runId = runId;
    }

    @Setup
    public void setup() {
      json = new JsonFactory();
    }

    @ProcessElement
    public void process(@Element KV<String, CoGbkResult> element, MultiOutputReceiver out) throws IOException {
      List<IdKeys> keys = new ArrayList<>();
      element.getValue().getAll(KEYS).forEach(keys::add);
      keys.sort(Comparator.comparingLong(IdKeys::order));
      List<Duplicate> duplicates = keys.isEmpty() ? List.of() : duplicates(keys);
      Map<Long, IdKeys> byOrder = new HashMap<>();
      keys.forEach(k -> byOrder.put(k.order(), k));
      if (!duplicates.isEmpty() && mode == DuplicateIds.FAIL) {
        Duplicate d = duplicates.get(0);
        IdKeys at = byOrder.get(d.order());
        IdKeys first = byOrder.get(d.firstOrder());
        throw new IllegalStateException("quality.duplicate_ids is 'fail', and " + duplicates.size() + " "
            + resourceType + " resource(s) repeat the id of one mapped before them; the first is at " + at.file()
            + " " + at.positionField() + " " + d.position() + " (mapping " + at.mapping() + "), repeating "
            + first.file() + " " + first.positionField() + " " + d.firstPosition() + " (mapping "
            + first.mapping() + "); nothing was replaced");
      }
      // The tasks that lose resources, by the targets of their resource parts.
      Map<String, IdKeys> affected = new HashMap<>();
      Map<Long, List<Duplicate>> byTask = new HashMap<>();
      for (Duplicate d : duplicates) {
        byTask.computeIfAbsent(d.order(), o -> new ArrayList<>()).add(d);
      }
      for (Long order : byTask.keySet()) {
        IdKeys k = byOrder.get(order);
        k.resourceTargets().forEach(t -> affected.put(t, k));
      }
      Map<IdKeys, List<PartFile>> toRewrite = new HashMap<>();
      for (KV<String, PartFile> part : element.getValue().getAll(PARTS)) {
        IdKeys task = affected.get(part.getValue().target());
        if (task == null) {
          out.get(tags.get(mappings.indexOf(part.getKey()))).output(part.getValue());
        } else {
          toRewrite.computeIfAbsent(task, t -> new ArrayList<>()).add(part.getValue());
        }
      }
      for (Map.Entry<IdKeys, List<PartFile>> e : toRewrite.entrySet()) {
        IdKeys task = e.getKey();
        Map<Long, Duplicate> dropped = new HashMap<>();
        byTask.get(task.order()).forEach(d -> dropped.put(d.position(), d));
        for (PartFile p : rewrite(task, e.getValue(), dropped, byOrder)) {
          out.get(tags.get(mappings.indexOf(task.mapping()))).output(p);
        }
        Metrics.counter(Counters.NAMESPACE, Counters.duplicates(task.mapping())).inc(dropped.size());
        Metrics.counter(Counters.NAMESPACE, Counters.rejected(task.mapping())).inc(dropped.size());
      }
    }

    /** The resources whose id one before them has, in task and position order, found by DuckDB in the key files. */
    private List<Duplicate> duplicates(List<IdKeys> keys) {
      List<String> files = new ArrayList<>();
      List<String> orders = new ArrayList<>();
      for (IdKeys k : keys) {
        for (String f : k.paths()) {
          files.add(DuckDb.literal(f));
          orders.add("(" + DuckDb.literal(f) + ", " + k.order() + ")");
        }
      }
      if (files.isEmpty()) {
        return List.of();
      }
      String keyFiles = "read_csv([" + String.join(", ", files) + "], header = false, delim = '\t', quote = '',"
          + " escape = '', columns = {'id': 'VARCHAR', 'pos': 'BIGINT'}";
      // A first pass groups the ids' hashes alone, several times faster than numbering every key with its task's
      // order (docs/BENCHMARKS.md); only when some hash repeats are the ids themselves compared.
      String repeatedHashes = "SELECT hash(id) AS h FROM " + keyFiles + ") GROUP BY h HAVING count(*) > 1";
      String read = "SELECT o.\"order\", k.id, k.pos FROM " + keyFiles + ", filename = true) AS k JOIN (VALUES "
          + String.join(", ", orders) + ") AS o(file, \"order\") ON k.filename = o.file"
          + " WHERE hash(k.id) IN (SELECT h FROM repeated)";
      String sql = "WITH k AS (" + read + "), d AS (SELECT id FROM k GROUP BY id HAVING count(*) > 1)"
          + " SELECT \"order\", pos, first_value(\"order\") OVER w, first_value(pos) OVER w FROM k SEMI JOIN d"
          + " USING (id) WINDOW w AS (PARTITION BY id ORDER BY \"order\", pos) QUALIFY row_number() OVER w > 1"
          + " ORDER BY \"order\", pos";
      List<Duplicate> out = new ArrayList<>();
      try (Connection db = DuckDb.openInMemory(settings); Statement st = db.createStatement()) {
        st.execute("CREATE TEMP TABLE repeated AS " + repeatedHashes);
        try (ResultSet rs = st.executeQuery("SELECT count(*) FROM repeated")) {
          rs.next();
          if (rs.getLong(1) == 0) {
            return out;
          }
        }
        try (ResultSet rs = st.executeQuery(sql)) {
          while (rs.next()) {
            out.add(new Duplicate(rs.getLong(1), rs.getLong(2), rs.getLong(3), rs.getLong(4)));
          }
        }
      } catch (SQLException e) {
        throw DuckDb.failure("finding duplicate " + resourceType + " ids failed", e);
      }
      return out;
    }

    /**
     * Writes a task's resource parts again without the dropped resources, which go to one part of reject records.
     * The key lines run beside the resource lines, one for one.
     */
    private List<PartFile> rewrite(IdKeys task, List<PartFile> parts, Map<Long, Duplicate> dropped,
        Map<Long, IdKeys> byOrder) throws IOException {
      parts.sort(Comparator.comparingInt(p -> task.resourceTargets().indexOf(p.target())));
      List<PartFile> out = new ArrayList<>();
      Path first = Path.of(parts.get(0).path());
      Path rejectsFile = first.resolveSibling(first.getFileName() + ".duplicates");
      long rejected = 0;
      List<BufferedReader> keyReaders = new ArrayList<>();
      try (Writer rejects = Files.newBufferedWriter(rejectsFile, StandardCharsets.UTF_8)) {
        for (String k : task.paths()) {
          keyReaders.add(Files.newBufferedReader(Path.of(k), StandardCharsets.UTF_8));
        }
        KeyLines keyLines = new KeyLines(keyReaders);
        for (PartFile part : parts) {
          Path kept = Path.of(part.path() + ".unique");
          long lines = 0;
          try (BufferedReader in = Files.newBufferedReader(Path.of(part.path()), StandardCharsets.UTF_8);
              BufferedWriter keep = Files.newBufferedWriter(kept, StandardCharsets.UTF_8)) {
            String line;
            while ((line = in.readLine()) != null) {
              String key = keyLines.next();
              int tab = key.lastIndexOf('\t');
              long position = Long.parseLong(key.substring(tab + 1));
              Duplicate d = dropped.get(position);
              if (d == null) {
                keep.write(line);
                keep.newLine();
                lines++;
              } else {
                rejects.write(rejectRecord(task, key.substring(0, tab), position, byOrder.get(d.firstOrder()),
                    d.firstPosition(), line));
                rejects.write('\n');
                rejected++;
              }
            }
          }
          out.add(new PartFile(part.target(), kept.toString(), lines));
        }
        keyLines.requireEnd();
      } finally {
        for (BufferedReader r : keyReaders) {
          r.close();
        }
      }
      if (rejected != dropped.size()) {
        throw new IllegalStateException("mapping " + task.mapping() + " on " + task.file() + ": " + dropped.size()
            + " duplicate ids were found in its keys, but " + rejected + " in its resource parts");
      }
      out.add(PartFile.rejects(parts.get(0).resourcePartName(), "duplicates", rejectsFile.toString(), rejected));
      return out;
    }

    private String rejectRecord(IdKeys task, String id, long position, IdKeys first, long firstPosition,
        String resource) throws IOException {
      StringWriter s = new StringWriter();
      try (JsonGenerator g = json.createGenerator(s)) {
        ResourceRejects.start(g, runId, task.source(), "quality", task.mapping(), resourceType, "duplicate_id",
            "a " + resourceType + " mapped before this one has its id: mapping " + first.mapping()
                + ", source " + first.source() + ", file " + first.file() + ", " + first.positionField() + " "
                + firstPosition, id);
        g.writeStringField("file", task.file());
        g.writeNumberField(task.positionField(), position);
        ResourceRejects.end(g, resource);
      }
      return s.toString();
    }
  }

  /** The lines of a task's key files, one after the other. */
  private static final class KeyLines {
    private final List<BufferedReader> readers;
    private int current;

    KeyLines(List<BufferedReader> readers) {
      this.readers = readers;
    }

    String next() throws IOException {
      while (current < readers.size()) {
        String line = readers.get(current).readLine();
        if (line != null) {
          return line;
        }
        current++;
      }
      throw new IllegalStateException("a task's key files hold fewer lines than its resource parts");
    }

    void requireEnd() throws IOException {
      for (int r = current; r < readers.size(); r++) {
        if (readers.get(r).readLine() != null) {
          throw new IllegalStateException("a task's key files hold more lines than its resource parts");
        }
      }
    }
  }
}
