package org.fhirbeam.databricks;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A file's bytes for an upload that the SDK may send again. The SDK (0.141) retries an upload the workspace answered
 * with 429, 501 or 503, or that failed to connect, by sending the same request body once more; a plain stream would
 * then be at its end, and the retry would store an empty or cut file. The SDK's default HTTP client (Apache
 * HttpClient's {@code InputStreamEntity}) closes the stream after each attempt, so this one starts over from the
 * file's first byte at the next read after a close. {@code SubmitTest} checks the bytes of a retried upload.
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
