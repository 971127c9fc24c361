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
 * or its process dies. A second run into the same directory stops before touching anything. The file stays: a
 * lock file that is deleted while locked lets two later runs lock two different files.
 */
final class OutputLock implements AutoCloseable {
  private final FileChannel channel;
  private final FileLock lock;

  private OutputLock(FileChannel channel, FileLock lock) {
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
      return new OutputLock(channel, lock);
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
      lock.release();
      channel.close();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
