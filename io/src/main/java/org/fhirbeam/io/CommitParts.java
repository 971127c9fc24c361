package org.fhirbeam.io;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import java.util.zip.CheckedInputStream;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PDone;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.data.Counters;
import org.fhirbeam.data.Tally;

/**
 * Moves the part files of successful work to their targets under the output root, and writes the run's figures: the
 * tallies the committed parts carry, with the lines each file set holds, added up ({@link #readTally}). Only parts
 * that reach this step (outputs of committed bundles) are moved and counted; parts of failed attempts stay behind
 * in the parts directory and are deleted with it. Moving is idempotent, so a retried bundle is harmless. A commit
 * that copies ({@link #copyingTo}: object storage such as {@code s3://...}, or a mount without atomic renames) has
 * each part copied by the task that commits it (gzip-compressed, and as a Parquet file too, when asked), and the
 * figures name each file with its lines, bytes and CRC32C ({@link #committedFiles}), for the manifest that commits
 * the run.
 */
public final class CommitParts extends PTransform<PCollection<PartFile>, PDone> {
  /** The file beside the committed parts that holds the run's figures. */
  static final String TALLY_FILE = ".tally.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final String directory;
  /** Whether parts are copied through Beam's file systems, with their figures for a manifest, rather than moved. */
  private final boolean copy;
  private final boolean gzipResources;
  /** By resource type, the layout of the Parquet files written beside the NDJSON ones; empty for none. */
  private final Map<String, DuckDbTables.ParquetLayout> parquet;
  private final DuckDbSettings settings;
  /** Where each resource part is written as a data file of its type's Delta table; null for no Delta tables. */
  private final DeltaFiles delta;
  /** Figures of the run counted apart from its parts, added up with theirs; null for none. */
  private final PCollection<Tally> more;

  private CommitParts(String directory, boolean copy, boolean gzipResources,
      Map<String, DuckDbTables.ParquetLayout> parquet, DuckDbSettings settings, DeltaFiles delta,
      PCollection<Tally> more) {
    this.directory = directory;
    this.copy = copy;
    this.gzipResources = gzipResources;
    this.parquet = Map.copyOf(parquet);
    this.settings = settings;
    this.delta = delta;
    this.more = more;
  }

  /** Moves the parts into a local {@code directory} (renames on one file system). */
  public static CommitParts to(String directory) {
    return new CommitParts(required(directory), false, false, Map.of(), null, null, null);
  }

  /**
   * Copies the parts to {@code directory} (a URI such as {@code s3://bucket/prefix}, or a path) through Beam's file
   * systems, each with its lines, bytes and CRC32C in the figures, for the manifest that commits the run
   * ({@link #committedFiles}): for storage without atomic renames.
   */
  public static CommitParts copyingTo(String directory) {
    return new CommitParts(required(directory), true, false, Map.of(), null, null, null);
  }

  private static String required(String directory) {
    if (directory == null || directory.isBlank()) {
      throw new IllegalArgumentException("directory is required");
    }
    return directory;
  }

  /** The same commit, copying resource parts gzip-compressed ({@code .ndjson.gz}); only when copying. */
  public CommitParts gzippingResources() {
    return new CommitParts(directory, requireCopy(), true, parquet, settings, delta, more);
  }

  private boolean requireCopy() {
    if (!copy) {
      throw new IllegalStateException("only a commit that copies its parts compresses them or writes Parquet");
    }
    return true;
  }

  /**
   * The same commit, also writing each resource part as a Parquet file laid out as its type's {@code layouts} say,
   * with a DuckDB of {@code settings}, and copying it to {@code parquet/<Type>/part-<part>.parquet} under the root
   * (listed with its rows as lines); only when copying.
   */
  public CommitParts writingParquet(Map<String, DuckDbTables.ParquetLayout> layouts, DuckDbSettings settings) {
    return new CommitParts(directory, requireCopy(), gzipResources, layouts, settings, delta, more);
  }

  /**
   * The same commit, adding up {@code figures} (of the same pipeline: counted from the whole run rather than from one
   * part, such as the checks of its references) with those of the parts.
   */
  public CommitParts addingUp(PCollection<Tally> figures) {
    return new CommitParts(directory, copy, gzipResources, parquet, settings, delta, figures);
  }

  /**
   * The same commit, also writing each resource part as a data file of its type's Delta table, as {@code files}
   * says, with a DuckDB of {@code settings}; the figures name each data file with its rows and bytes
   * ({@link DeltaFiles#written(Tally)}) for the commit that adds them to the tables. Either way of committing.
   */
  public CommitParts writingDelta(DeltaFiles files, DuckDbSettings settings) {
    return new CommitParts(directory, copy, gzipResources, parquet, settings, files, more);
  }

  /**
   * The figures of the parts a finished pipeline committed into {@code directory} (a path or a URI); none when it
   * committed no part.
   */
  public static Tally readTally(String directory) throws IOException {
    if (!ObjectStorage.exists(directory + "/" + TALLY_FILE)) {
      return Tally.EMPTY;
    }
    Map<String, Long> counts = JSON.readValue(ObjectStorage.read(directory + "/" + TALLY_FILE),
        new TypeReference<Map<String, Long>>() {});
    Tally.Builder tally = Tally.builder();
    counts.forEach(tally::add);
    return tally.build();
  }

  /**
   * The figures committing a part adds to its own: the lines of its file set and, for a part of rejects, its records
   * by mapping, stage and rule (read from the file, which must be where {@code file} says).
   */
  public static Tally committedFigures(PartFile part, Path file) throws IOException {
    Tally committed = part.tally().plus(Tally.of(Counters.committedLines(part.fileSet()), part.lines()));
    return part.holdsResources() || part.lines() == 0 ? committed : committed.plus(MoveFn.reasons(file));
  }

  /** A file copied under the root for a manifest: where under the root, and what it holds. */
  public record CommittedFile(String target, long lines, long bytes, long crc32c) {}

  private static final String FILE_LINES = "file_lines/";
  private static final String FILE_BYTES = "file_bytes/";
  private static final String FILE_CRC32C = "file_crc32c/";

  /** The files a run committed to object storage, by target. */
  public static List<CommittedFile> committedFiles(Tally tally) {
    Map<String, Long> bytes = tally.withPrefix(FILE_BYTES);
    Map<String, Long> crc = tally.withPrefix(FILE_CRC32C);
    List<CommittedFile> out = new ArrayList<>();
    tally.withPrefix(FILE_LINES).forEach((target, lines) -> out.add(new CommittedFile(target, lines,
        bytes.get(target), crc.get(target))));
    return out;
  }

  @Override
  public PDone expand(PCollection<PartFile> input) {
    PCollection<Tally> tallies = input.apply("MoveParts", ParDo.of(new MoveFn(directory, copy, gzipResources,
        parquet, settings, delta))).setCoder(SerializableCoder.of(Tally.class));
    if (more != null) {
      tallies = PCollectionList.of(tallies).and(more).apply("WithRunFigures", Flatten.pCollections());
    }
    tallies
        // Without the default for no input: that costs the DirectRunner a side input and two more steps, and a run
        // that committed nothing has nothing to add up (readTally).
        .apply("AddUpTallies", Combine.globally(new AddUp()).withoutDefaults())
        .apply("WriteTally", ParDo.of(new WriteTallyFn(directory)));
    return PDone.in(input.getPipeline());
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("directory", directory));
  }

  static final class MoveFn extends DoFn<PartFile, Tally> {
    private final String directory;
    private final boolean copy;
    private final boolean gzipResources;
    private final Map<String, DuckDbTables.ParquetLayout> parquet;
    private final DuckDbSettings settings;
    private final DeltaFiles delta;
    private transient Connection db;

    MoveFn(String directory, boolean copy, boolean gzipResources, Map<String, DuckDbTables.ParquetLayout> parquet,
        DuckDbSettings settings, DeltaFiles delta) {
      this.directory = directory;
      this.copy = copy;
      this.gzipResources = gzipResources;
      this.parquet = parquet;
      this.settings = settings;
      this.delta = delta;
    }

    @Setup
    public void setup() throws SQLException {
      if (!parquet.isEmpty() || delta != null) {
        // Rows in a Delta table have no order: unordered, DuckDB writes the file in half the time.
        db = delta == null ? DuckDb.openInMemory(settings)
            : DuckDb.openInMemory(settings, "SET preserve_insertion_order = false");
      }
    }

    @Teardown
    public void teardown() {
      if (db != null) {
        DuckDb.closeQuietly(db);
        db = null;
      }
    }

    @ProcessElement
    public void process(@Element PartFile part, OutputReceiver<Tally> out) throws IOException, SQLException {
      Path from = Path.of(part.path());
      Tally committed = committedFigures(part, from);
      if (part.lines() == 0) {
        out.output(committed);
        Files.deleteIfExists(from);
        return;
      }
      Path to = copy ? null : Path.of(directory).resolve(part.target());
      // Moved by an earlier attempt of this bundle: the part is read where it went.
      Path read = to != null && !Files.exists(from) ? to : from;
      // A retried bundle writes the part's files again, under the same names: they are replaced, not repeated.
      boolean parquetSink = copy && !parquet.isEmpty();
      if (part.holdsResources() && (parquetSink || delta != null)) {
        String name = part.resourcePartName();
        String type = name.substring(0, name.indexOf('-'));
        String table = DeltaFiles.resourceTable(type);
        // The Parquet sink's files and the Delta tables' are laid out alike: one file serves both.
        DuckDbTables.ParquetLayout layout = delta != null ? delta.layouts().get(type) : parquet.get(type);
        Path file = delta == null ? PartFile.beside(part.path(), "parquet") : writing(table, name);
        try {
          layout.writePart(db, read.toString(), file.toString(), part.lines());
          if (parquetSink) {
            committed = committed.plus(copy(file, "parquet/" + type + "/part-" + name.substring(type.length() + 1)
                + ".parquet", part.lines(), false, "application/vnd.apache.parquet"));
          }
          if (delta != null) {
            committed = committed.plus(committedDataFile(file, table, name, part.lines()));
          }
        } finally {
          Files.deleteIfExists(file);
        }
      } else if (delta != null) {
        // A part of rejects: a data file of the rejects table.
        String name = part.target().substring(part.target().lastIndexOf('/') + 1).replaceFirst("\\.ndjson$", "");
        Path file = writing(DeltaFiles.REJECTS, name);
        try {
          execute("COPY (" + QualityTables.rejectsQuery(List.of(read.toString())) + ") TO "
              + DuckDb.literal(file.toString()) + " (FORMAT parquet)");
          committed = committed.plus(committedDataFile(file, DeltaFiles.REJECTS, name, part.lines()));
        } finally {
          Files.deleteIfExists(file);
        }
      }
      if (copy) {
        boolean gzip = gzipResources && part.holdsResources();
        out.output(committed.plus(copy(from, gzip ? part.target() + ".gz" : part.target(), part.lines(), gzip,
            "application/x-ndjson")));
        return;
      }
      out.output(committed);
      Files.createDirectories(to.getParent());
      if (Files.exists(to) && !Files.exists(from)) {
        return; // moved by an earlier attempt of this bundle
      }
      Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
    }

    /**
     * Where the data file that part {@code partName} becomes in Delta table {@code table} is written: in the
     * table's folder, under a name of this attempt's own, renamed by {@link #committedDataFile} when it is whole.
     */
    private Path writing(String table, String partName) throws IOException {
      Path folder = Files.createDirectories(Path.of(DeltaFiles.folder(delta.root(), table)));
      return PartFile.beside(folder.resolve("." + delta.fileName(partName)).toString(), "writing");
    }

    private void execute(String sql) throws SQLException {
      try (Statement st = db.createStatement()) {
        st.execute(sql);
      }
    }

    /** Renames a whole data file into place in its table's folder, and returns its figures for the commit. */
    private Tally committedDataFile(Path file, String table, String partName, long rows) throws IOException {
      String name = delta.fileName(partName);
      long bytes = Files.size(file);
      Files.move(file, Path.of(DeltaFiles.folder(delta.root(), table), name), StandardCopyOption.REPLACE_EXISTING,
          StandardCopyOption.ATOMIC_MOVE);
      return DeltaFiles.written(table, name, rows, bytes);
    }

    /**
     * How many records of a reject part each mapping rejected at each stage by each rule, read from the records'
     * top-level fields (the rejected row inside is skipped, not parsed).
     */
    static Tally reasons(Path rejects) throws IOException {
      Map<String, Long> counts = new java.util.TreeMap<>();
      try (com.fasterxml.jackson.core.JsonParser p = JSON.getFactory().createParser(rejects.toFile())) {
        String mapping = null;
        String stage = null;
        String rule = null;
        com.fasterxml.jackson.core.JsonToken t;
        while ((t = p.nextToken()) != null) {
          if (t == com.fasterxml.jackson.core.JsonToken.START_OBJECT) {
            mapping = stage = rule = "";
          } else if (t == com.fasterxml.jackson.core.JsonToken.FIELD_NAME) {
            String field = p.currentName();
            com.fasterxml.jackson.core.JsonToken value = p.nextToken();
            if (value.isStructStart()) {
              p.skipChildren();
            } else if (field.equals("mapping")) {
              mapping = p.getValueAsString("");
            } else if (field.equals("stage")) {
              stage = p.getValueAsString("");
            } else if (field.equals("rule")) {
              rule = p.getValueAsString("");
            }
          } else if (t == com.fasterxml.jackson.core.JsonToken.END_OBJECT) {
            counts.merge(Counters.rejectReason(mapping, stage, rule), 1L, Long::sum);
          }
        }
      }
      Tally.Builder tally = Tally.builder();
      counts.forEach(tally::add);
      return tally.build();
    }

    /**
     * Copies {@code file} (gzip-compressed, when asked, through a copy beside it) to {@code target} under the root,
     * and returns its entry for the manifest: the lines (rows) it holds, and the stored object's bytes and CRC32C.
     */
    private Tally copy(Path file, String target, long lines, boolean gzip, String mimeType) throws IOException {
      Path stored = gzip ? PartFile.beside(file.toString(), "gz") : file;
      CRC32C crc = new CRC32C();
      long bytes;
      try {
        if (gzip) {
          try (InputStream in = Files.newInputStream(file);
              OutputStream to = FileTrees.gzip(Files.newOutputStream(stored))) {
            in.transferTo(to);
          }
        }
        // Two attempts of a task may copy the same part at once: each target is replaced whole.
        try (InputStream in = new CheckedInputStream(Files.newInputStream(stored), crc)) {
          bytes = ObjectStorage.replace(directory + "/" + target, in, gzip ? "application/gzip" : mimeType);
        }
      } finally {
        if (gzip) {
          Files.deleteIfExists(stored);
        }
      }
      return Tally.builder().add(FILE_LINES + target, lines).add(FILE_BYTES + target, bytes)
          .add(FILE_CRC32C + target, crc.getValue()).build();
    }
  }

  /** Adds tallies up; nothing committed adds up to the empty tally. */
  static final class AddUp extends Combine.BinaryCombineFn<Tally> {
    @Override
    public Tally apply(Tally left, Tally right) {
      return left.plus(right);
    }

    @Override
    public Tally identity() {
      return Tally.EMPTY;
    }
  }

  static final class WriteTallyFn extends DoFn<Tally, Void> {
    private final String directory;

    WriteTallyFn(String directory) {
      this.directory = directory;
    }

    @ProcessElement
    public void process(@Element Tally tally) throws IOException {
      ObjectStorage.write(directory + "/" + TALLY_FILE, JSON.writeValueAsBytes(tally.counts()), "application/json");
    }
  }
}
