package org.fhirbeam.pipeline;

import java.io.PrintStream;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Shows rows read and the rate while a pipeline runs: a line redrawn in place on a terminal, a plain line every
 * ten seconds otherwise (logs, CI). Runs on its own daemon thread; {@link #close()} stops it.
 */
final class Progress implements AutoCloseable {
  private final Thread thread;
  private volatile boolean done;

  Progress(PrintStream out, boolean terminal, LongSupplier rowsRead, int files) {
    long start = System.nanoTime();
    this.thread = new Thread(() -> {
      long lastPrint = start;
      while (!done) {
        try {
          Thread.sleep(terminal ? 500 : 1000);
        } catch (InterruptedException e) {
          break;
        }
        long now = System.nanoTime();
        if (!terminal && now - lastPrint < 10_000_000_000L) {
          continue;
        }
        lastPrint = now;
        double seconds = (now - start) / 1e9;
        long rows = rowsRead.getAsLong();
        String line = String.format(Locale.ROOT, "reading %d file(s): %,d rows, %,d rows/s, %.0f s", files, rows,
            Math.round(rows / Math.max(seconds, 1e-3)), seconds);
        if (terminal) {
          out.print("\r" + line + "   ");
        } else {
          out.println(line);
        }
        out.flush();
      }
      if (terminal) {
        out.print("\r" + " ".repeat(79) + "\r");
        out.flush();
      }
    }, "fhirbeam-progress");
    thread.setDaemon(true);
    thread.start();
  }

  @Override
  public void close() {
    done = true;
    thread.interrupt();
    try {
      thread.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
