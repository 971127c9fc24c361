package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.fhirbeam.config.InputException;

/**
 * One run at a time per output directory: an OS file lock on {@code .fhirbeam.lock}, released when the run ends
 * or its process dies. A second run into the same directory stops before touching anything.
 */
final class OutputLock implements AutoCloseable {
  private final Path file;
  private final FileChannel channel;
  private final FileLock lock;

  private OutputLock(Path file, FileChannel channel, FileLock lock) {
    this.file = file;
    this.channel = channel;
    this.lock = lock;
  }

  static OutputLock acquire(Path output) {
    FileChannel channel = null;
    try {
      Files.createDirectories(output);
      channel = FileChannel.open(output.resolve(".fhirbeam.lock"), StandardOpenOption.CREATE,
          StandardOpenOption.WRITE);
      FileLock lock = channel.tryLock();
      if (lock == null) {
        throw new OverlappingFileLockException();
      }
      return new OutputLock(output.resolve(".fhirbeam.lock"), channel, lock);
    } catch (OverlappingFileLockException e) {
      closeQuietly(channel);
      throw new InputException("output directory " + output + " is in use by another run");
    } catch (IOException e) {
      closeQuietly(channel);
      throw new InputException("cannot use output directory " + output + " (" + e.getClass().getSimpleName() + ")",
          e);
    }
  }

  private static void closeQuietly(FileChannel channel) {
    if (channel != null) {
      try {
        channel.close();
      } catch (IOException ignored) {
        // the lock failure is what the user needs to see
      }
    }
  }

  @Override
  public void close() {
    try {
      Files.deleteIfExists(file); // tidy output; a waiting run simply retries after this one ends
      lock.release();
      channel.close();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
