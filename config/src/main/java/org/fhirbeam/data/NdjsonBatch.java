package org.fhirbeam.data;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Newline-terminated JSON lines bound for one destination (a resource type, or the rejects), kept as the UTF-8
 * bytes that will be written, so a batch is encoded once and copied to files without re-encoding.
 */
public final class NdjsonBatch {
  private final String destination;
  private final int lineCount;
  private final byte[] utf8;

  public NdjsonBatch(String destination, int lineCount, byte[] utf8) {
    this.destination = Objects.requireNonNull(destination);
    this.lineCount = lineCount;
    this.utf8 = Objects.requireNonNull(utf8);
  }

  public String destination() {
    return destination;
  }

  public int lineCount() {
    return lineCount;
  }

  /** The bytes; callers must not modify them. */
  public byte[] utf8() {
    return utf8;
  }

  /** The lines as strings, without their line ends (for tests and small tools, not for hot paths). */
  public List<String> lines() {
    List<String> out = new ArrayList<>(lineCount);
    String all = new String(utf8, StandardCharsets.UTF_8);
    int start = 0;
    for (int i = all.indexOf('\n'); i >= 0; i = all.indexOf('\n', start)) {
      out.add(all.substring(start, i));
      start = i + 1;
    }
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof NdjsonBatch b && destination.equals(b.destination) && lineCount == b.lineCount
        && java.util.Arrays.equals(utf8, b.utf8);
  }

  @Override
  public int hashCode() {
    return Objects.hash(destination, lineCount);
  }

  @Override
  public String toString() {
    return "NdjsonBatch{" + destination + ", " + lineCount + " lines}";
  }
}
