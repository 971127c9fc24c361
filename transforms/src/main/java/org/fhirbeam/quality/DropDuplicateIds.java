package org.fhirbeam.quality;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.BufferedReader;
import java.io.Closeable;
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
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
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
import org.fhirbeam.data.Tally;
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
      Map<String, PartFile> partsByTarget = new HashMap<>();
      element.getValue().getAll(PARTS).forEach(p -> partsByTarget.put(p.getValue().target(), p.getValue()));
      List<Duplicate> duplicates = keys.isEmpty() ? List.of() : duplicates(keys, partsByTarget);
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
      // The tasks that lose resources; the parts of the others pass as they are.
      Map<Long, Map<Long, Duplicate>> byTask = new HashMap<>();
      for (Duplicate d : duplicates) {
        byTask.computeIfAbsent(d.order(), o -> new HashMap<>()).put(d.position(), d);
      }
      Set<String> rewritten = new HashSet<>();
      byTask.keySet().forEach(o -> rewritten.addAll(byOrder.get(o).resourceTargets()));
      for (KV<String, PartFile> part : element.getValue().getAll(PARTS)) {
        if (!rewritten.contains(part.getValue().target())) {
          out.get(tags.get(mappings.indexOf(part.getKey()))).output(part.getValue());
        }
      }
      for (Map.Entry<Long, Map<Long, Duplicate>> e : byTask.entrySet()) {
        IdKeys task = byOrder.get(e.getKey());
        Map<Long, Duplicate> dropped = e.getValue();
        Tally tally = Tally.builder().count(Counters.duplicates(task.mapping()), dropped.size())
            .count(Counters.rejected(task.mapping()), dropped.size()).build();
        for (PartFile p : rewrite(task, partsOf(task, partsByTarget), dropped, byOrder, tally)) {
          out.get(tags.get(mappings.indexOf(task.mapping()))).output(p);
        }
      }
    }

    /**
     * The resources whose id one before them has, in task and position order. DuckDB groups the keys' id hashes; only
     * the resources whose hash repeats are read (their ids from their resource lines) and compared by id.
     */
    private List<Duplicate> duplicates(List<IdKeys> keys, Map<String, PartFile> partsByTarget) throws IOException {
      List<String> files = new ArrayList<>();
      Map<String, IdKeys> byFile = new HashMap<>();
      for (IdKeys k : keys) {
        for (String f : k.paths()) {
          files.add(DuckDb.literal(f));
          byFile.put(f, k);
        }
      }
      if (files.isEmpty()) {
        return List.of();
      }
      String keyFiles = "read_csv([" + String.join(", ", files) + "], header = false, delim = '\t', quote = '',"
          + " escape = '', columns = {'h': 'UBIGINT', 'pos': 'BIGINT'}";
      // The positions, by task, of the resources whose id hash repeats.
      Map<IdKeys, Set<Long>> candidates = new HashMap<>();
      try (Connection db = DuckDb.openInMemory(settings); Statement st = db.createStatement()) {
        st.execute("CREATE TEMP TABLE repeated AS SELECT h FROM " + keyFiles + ") GROUP BY h HAVING count(*) > 1");
        try (ResultSet rs = st.executeQuery("SELECT count(*) FROM repeated")) {
          rs.next();
          if (rs.getLong(1) == 0) {
            return List.of();
          }
        }
        try (ResultSet rs = st.executeQuery("SELECT filename, pos FROM " + keyFiles + ", filename = true)"
            + " SEMI JOIN repeated USING (h)")) {
          while (rs.next()) {
            candidates.computeIfAbsent(byFile.get(rs.getString(1)), k -> new HashSet<>()).add(rs.getLong(2));
          }
        }
      } catch (SQLException e) {
        throw DuckDb.failure("finding duplicate " + resourceType + " ids failed", e);
      }
      // Candidates with the same id, each group in task and position order: all but the first are duplicates.
      Map<String, List<long[]>> byId = new HashMap<>();
      for (Map.Entry<IdKeys, Set<Long>> e : candidates.entrySet()) {
        IdKeys task = e.getKey();
        try (Lines lines = new Lines(task, partsOf(task, partsByTarget))) {
          while (lines.next()) {
            if (e.getValue().contains(lines.position())) {
              byId.computeIfAbsent(lines.id(), i -> new ArrayList<>())
                  .add(new long[] {task.order(), lines.position()});
            }
          }
        }
      }
      Comparator<long[]> inOrder = Comparator.<long[]>comparingLong(x -> x[0]).thenComparingLong(x -> x[1]);
      List<Duplicate> out = new ArrayList<>();
      for (List<long[]> group : byId.values()) {
        group.sort(inOrder);
        for (int i = 1; i < group.size(); i++) {
          out.add(new Duplicate(group.get(i)[0], group.get(i)[1], group.get(0)[0], group.get(0)[1]));
        }
      }
      out.sort(Comparator.comparingLong(Duplicate::order).thenComparingLong(Duplicate::position));
      return out;
    }

    /** A task's resource parts, in order. */
    private static List<PartFile> partsOf(IdKeys task, Map<String, PartFile> partsByTarget) {
      List<PartFile> parts = new ArrayList<>();
      for (String target : task.resourceTargets()) {
        parts.add(Objects.requireNonNull(partsByTarget.get(target), target));
      }
      return parts;
    }

    /**
     * Writes a task's resource parts again without the dropped resources, which go to one part of reject records.
     */
    private List<PartFile> rewrite(IdKeys task, List<PartFile> parts, Map<Long, Duplicate> dropped,
        Map<Long, IdKeys> byOrder, Tally tally) throws IOException {
      Path first = Path.of(parts.get(0).path());
      Path rejectsFile = PartFile.beside(first.toString(), "duplicates");
      List<Path> uniques = new ArrayList<>();
      for (PartFile part : parts) {
        uniques.add(PartFile.beside(part.path(), "unique"));
      }
      long rejected = 0;
      long[] kept = new long[parts.size()];
      List<Writer> keeps = new ArrayList<>();
      try (Writer rejects = Files.newBufferedWriter(rejectsFile, StandardCharsets.UTF_8);
          Lines lines = new Lines(task, parts)) {
        for (PartFile part : parts) {
          keeps.add(Files.newBufferedWriter(uniques.get(keeps.size()), StandardCharsets.UTF_8));
        }
        while (lines.next()) {
          Duplicate d = dropped.get(lines.position());
          if (d == null) {
            keeps.get(lines.part()).write(lines.line());
            keeps.get(lines.part()).write('\n');
            kept[lines.part()]++;
          } else {
            rejects.write(rejectRecord(task, lines.id(), lines.position(), byOrder.get(d.firstOrder()),
                d.firstPosition(), lines.line()));
            rejects.write('\n');
            rejected++;
          }
        }
      } finally {
        for (Writer w : keeps) {
          w.close();
        }
      }
      if (rejected != dropped.size()) {
        throw new IllegalStateException("mapping " + task.mapping() + " on " + task.file() + ": " + dropped.size()
            + " duplicate ids were found in its keys, but " + rejected + " in its resource parts");
      }
      List<PartFile> out = new ArrayList<>();
      for (int i = 0; i < parts.size(); i++) {
        out.add(new PartFile(parts.get(i).target(), uniques.get(i).toString(), kept[i], parts.get(i).tally()));
      }
      out.add(PartFile.rejects(parts.get(0).resourcePartName(), "duplicates", rejectsFile.toString(), rejected)
          .plus(tally));
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

  /**
   * A task's resource lines, part after part, each with its row's position from the key line beside it (the key
   * files hold one line per resource, in the same order).
   */
  private static final class Lines implements Closeable {
    private final List<PartFile> parts;
    private final List<String> keyFiles;
    private BufferedReader resources;
    private BufferedReader keys;
    private int part = -1;
    private int keyFile = -1;
    private String line;
    private long position;

    Lines(IdKeys task, List<PartFile> parts) {
      this.parts = parts;
      this.keyFiles = task.paths();
    }

    /** Moves to the next resource; false after the last, when the key lines must have run out too. */
    boolean next() throws IOException {
      while ((line = resources == null ? null : resources.readLine()) == null) {
        if (resources != null) {
          resources.close();
        }
        if (++part == parts.size()) {
          resources = null;
          if (nextKey() != null) {
            throw new IllegalStateException("a task's key files hold more lines than its resource parts");
          }
          return false;
        }
        resources = Files.newBufferedReader(Path.of(parts.get(part).path()), StandardCharsets.UTF_8);
      }
      String key = nextKey();
      if (key == null) {
        throw new IllegalStateException("a task's key files hold fewer lines than its resource parts");
      }
      position = Long.parseLong(key.substring(key.indexOf('\t') + 1));
      return true;
    }

    private String nextKey() throws IOException {
      String key;
      while ((key = keys == null ? null : keys.readLine()) == null) {
        if (keys != null) {
          keys.close();
        }
        if (++keyFile >= keyFiles.size()) {
          keys = null;
          return null;
        }
        keys = Files.newBufferedReader(Path.of(keyFiles.get(keyFile)), StandardCharsets.UTF_8);
      }
      return key;
    }

    String line() {
      return line;
    }

    long position() {
      return position;
    }

    /** The index of the current line's part. */
    int part() {
      return part;
    }

    /** The resource's id: the mapping writes it right after the resource type, and ids never hold a quote. */
    String id() {
      int start = line.indexOf(ID_FIELD) + ID_FIELD.length();
      return line.substring(start, line.indexOf('"', start));
    }

    @Override
    public void close() throws IOException {
      if (resources != null) {
        resources.close();
      }
      if (keys != null) {
        keys.close();
      }
    }
  }

  private static final String ID_FIELD = ",\"id\":\"";
}
