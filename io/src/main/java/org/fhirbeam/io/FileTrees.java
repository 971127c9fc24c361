package org.fhirbeam.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;

/**
 * File helpers shared by the stages and commands: counting NDJSON lines, compressing, deleting directory trees.
 */
public final class FileTrees {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(FileTrees.class);

  private FileTrees() {}

  /** Counts newline characters: the number of NDJSON lines in a file. */
  public static long countLines(Path file) throws IOException {
    long lines = 0;
    byte[] buf = new byte[1 << 16];
    try (InputStream in = Files.newInputStream(file)) {
      int n;
      while ((n = in.read(buf)) > 0) {
        for (int i = 0; i < n; i++) {
          if (buf[i] == '\n') {
            lines++;
          }
        }
      }
    }
    return lines;
  }

  /** Deletes a file or a directory with everything below it; nothing happens when it does not exist. */
  public static void deleteTree(Path root) {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Compresses what is written to {@code out} with gzip. Java's gzip header has no time or name in it, so equal
   * inputs compress to equal bytes.
   */
  public static OutputStream gzip(OutputStream out) throws IOException {
    return new GZIPOutputStream(out, 1 << 16);
  }

  /**
   * Deletes what it can of a scratch tree (a run's staging or work folder, a task's fetched objects) without failing:
   * when a runner gives up on a job, tasks it abandoned may still be writing below {@code root} while it is deleted.
   * What is left is logged (the path only); the local committer removes a staging folder left behind at the next run
   * into the same output, the manifest committer every unlisted file under its output's {@code runs/}.
   */
  public static void deleteScratch(Path root) {
    try {
      deleteTree(root);
    } catch (UncheckedIOException e) {
      LOG.warn("could not delete all of {}: {}", root, e.getCause().toString());
    }
  }

  /** Deletes the folders below {@code root} that hold no file, deepest first; {@code root} itself stays. */
  public static void deleteEmptyFolders(Path root) throws IOException {
    if (!Files.isDirectory(root)) {
      return;
    }
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        if (!p.equals(root) && Files.isDirectory(p)) {
          try (Stream<Path> entries = Files.list(p)) {
            if (entries.findAny().isEmpty()) {
              Files.delete(p);
            }
          }
        }
      }
    }
  }
}
