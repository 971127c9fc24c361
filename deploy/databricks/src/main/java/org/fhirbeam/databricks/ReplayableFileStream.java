package org.fhirbeam.databricks;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A file's bytes for an upload that the SDK may send again. The SDK retries a request the workspace answered with
 * 429 or 503 by sending the same request body once more; a plain stream would then be at its end, and the retry
 * would store an empty or cut file. The HTTP client closes the stream after each attempt, so this one starts over
 * from the file's first byte at the next read after a close.
 */
final class ReplayableFileStream extends InputStream {
  private final Path file;
  private InputStream current;

  ReplayableFileStream(Path file) {
    this.file = file;
  }

  private InputStream current() throws IOException {
    if (current == null) {
      current = Files.newInputStream(file);
    }
    return current;
  }

  @Override
  public int read() throws IOException {
    return current().read();
  }

  @Override
  public int read(byte[] b, int off, int len) throws IOException {
    return current().read(b, off, len);
  }

  @Override
  public void close() throws IOException {
    if (current != null) {
      current.close();
      current = null;
    }
  }
}
