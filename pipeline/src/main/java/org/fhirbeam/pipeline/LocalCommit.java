package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.fhirbeam.io.DuckDbTables;
import org.fhirbeam.io.FileTrees;

/**
 * Commits a run into a local output directory: numbers its staged files, swaps them in by atomic renames (the
 * previous results kept aside until the run has committed, and put back if it does not), and cleans up after runs
 * that were killed. The committer for file systems that rename atomically; object storage needs another.
 */
final class LocalCommit {
  private final Path output;
  private final String runId;

  LocalCommit(Path output, String runId) {
    this.output = output;
    this.runId = runId;
  }

  /** A swap of this run's staged results into the output directory. */
  Swap swap() {
    return new Swap();
  }

  /** Renames a resource type's committed parts to the Bulk Data style {@code <Type>-SSSSS-of-NNNNN.ndjson}. */
  static void numberFiles(Path dir, String type) throws IOException {
    List<String> parts = new ArrayList<>(filesOf(dir, type));
    // Ordered by content, not by part name: equal inputs give byte-identical files however they were cut into tasks.
    Map<String, String> firstLines = new LinkedHashMap<>();
    for (String part : parts) {
      try (java.io.BufferedReader in = Files.newBufferedReader(Path.of(part))) {
        String first = in.readLine();
        firstLines.put(part, first == null ? "" : first);
      }
    }
    parts.sort((a, b) -> {
      int c = firstLines.get(a).compareTo(firstLines.get(b));
      return c != 0 ? c : compareContents(Path.of(a), Path.of(b));
    });
    for (int i = 0; i < parts.size(); i++) {
      Path part = Path.of(parts.get(i));
      Files.move(part, dir.resolve(String.format(java.util.Locale.ROOT, "%s-%05d-of-%05d.ndjson.tmp", type, i,
          parts.size())), StandardCopyOption.ATOMIC_MOVE);
    }
    try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, type + "-*.ndjson.tmp")) {
      for (Path p : s) {
        String name = p.getFileName().toString();
        Files.move(p, dir.resolve(name.substring(0, name.length() - ".tmp".length())), StandardCopyOption.ATOMIC_MOVE);
      }
    }
  }

  private static int compareContents(Path a, Path b) {
    try {
      long at = Files.mismatch(a, b);
      if (at < 0) {
        return 0;
      }
      try (java.io.RandomAccessFile ra = new java.io.RandomAccessFile(a.toFile(), "r");
          java.io.RandomAccessFile rb = new java.io.RandomAccessFile(b.toFile(), "r")) {
        ra.seek(at);
        rb.seek(at);
        return Integer.compare(ra.read(), rb.read());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The NDJSON files {@code <destination>-*.ndjson} in {@code dir}, sorted by name. */
  private static List<String> filesOf(Path dir, String destination) throws IOException {
    return FileSinks.files(dir, destination, List.of(".ndjson")).stream().map(Path::toString).toList();
  }

  /**
   * Moves staged results into place by renames, keeping the previous ones aside until the run has committed, so
   * they can be put back if the database commit fails.
   */
  final class Swap {
    private static final List<String> NAMES = List.of("fhir", "parquet", "rejects", "report", "run-summary.json");
    private final List<Path[]> moved = new ArrayList<>();

    private Swap() {}

    void in(Path staging) throws IOException {
      for (String name : NAMES) {
        if (!Files.exists(staging.resolve(name))) {
          continue; // a sink this run does not write (parquet/) keeps what an earlier run wrote
        }
        Path target = output.resolve(name);
        Path backup = null;
        if (Files.exists(target)) {
          backup = output.resolve(".previous-" + runId + "-" + name);
          Files.move(target, backup, StandardCopyOption.ATOMIC_MOVE);
        }
        moved.add(new Path[] {target, backup});
        Files.move(staging.resolve(name), target, StandardCopyOption.ATOMIC_MOVE);
      }
    }

    void restore() {
      for (int i = moved.size() - 1; i >= 0; i--) {
        Path target = moved.get(i)[0];
        Path backup = moved.get(i)[1];
        FileTrees.deleteTree(target);
        if (backup != null) {
          try {
            Files.move(backup, target, StandardCopyOption.ATOMIC_MOVE);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      }
    }

    /** After the commit the previous results are garbage: renamed first, so a crash never leaves half of one. */
    void dropBackups() {
      for (Path[] m : moved) {
        if (m[1] != null) {
          try {
            Path trash = output.resolve(".trash-" + m[1].getFileName().toString().substring(".previous-".length()));
            Files.move(m[1], trash, StandardCopyOption.ATOMIC_MOVE);
            FileTrees.deleteTree(trash);
          } catch (IOException | UncheckedIOException e) {
            // the run has committed; the next run deletes what is left
          }
        }
      }
    }
  }

  /**
   * Leftovers of runs that were killed, handled while this run holds the output lock. Staging directories and
   * trash go. Previous results that a run set aside while committing are put back if that run did not commit
   * (its id is not in the database's run table; without the DuckDB sink: its staging still held files), and
   * thrown away if it did.
   */
  void recoverInterruptedRuns(Connection db) throws IOException {
    try (DirectoryStream<Path> s = Files.newDirectoryStream(output, ".previous-*")) {
      for (Path backup : s) {
        String rest = backup.getFileName().toString().substring(".previous-".length());
        for (String original : Swap.NAMES) {
          if (!rest.endsWith("-" + original)) {
            continue;
          }
          String other = rest.substring(0, rest.length() - original.length() - 1);
          boolean committed = db != null ? DuckDbTables.committed(db, other)
              : !stagedFilesLeft(output.resolve(".staging-" + other));
          if (committed) {
            FileTrees.deleteTree(backup);
          } else {
            FileTrees.deleteTree(output.resolve(original));
            Files.move(backup, output.resolve(original), StandardCopyOption.ATOMIC_MOVE);
          }
        }
      }
    }
    for (String pattern : List.of(".staging-*", ".trash-*")) {
      try (DirectoryStream<Path> s = Files.newDirectoryStream(output, pattern)) {
        for (Path p : s) {
          FileTrees.deleteTree(p);
        }
      }
    }
  }

  private static boolean stagedFilesLeft(Path staging) {
    for (String name : Swap.NAMES) {
      if (Files.exists(staging.resolve(name))) {
        return true;
      }
    }
    return false;
  }

}
