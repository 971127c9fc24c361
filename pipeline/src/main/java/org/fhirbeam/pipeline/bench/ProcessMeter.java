package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Runs a command as a separate process and measures it from outside: wall time, and, from Linux's
 * {@code /proc}, CPU time (user + system) and peak resident memory ({@code VmHWM}), sampled every 20 ms while
 * it runs (so the last few milliseconds of CPU before exit can be missed).
 */
final class ProcessMeter {
  private static final long CLOCK_TICKS_PER_SECOND = 100;

  /** What one run cost. CPU and RSS are -1 where {@code /proc} is not available. */
  record Measurement(int exitCode, double wallSeconds, double cpuSeconds, long peakRssBytes, String output) {}

  private ProcessMeter() {}

  static Measurement run(List<String> command, Path log) throws IOException, InterruptedException {
    return run(new ProcessBuilder(command), log);
  }

  /** Runs the process {@code builder} describes, its output into {@code log}. */
  static Measurement run(ProcessBuilder builder, Path log) throws IOException, InterruptedException {
    return run(builder, log, null);
  }

  /**
   * {@link #run(ProcessBuilder, Path)}, with {@code driver} (null for none) given the process on a thread of its own
   * once it has started: to feed it input while it runs, or to stop it.
   */
  static Measurement run(ProcessBuilder builder, Path log, java.util.function.Consumer<Process> driver)
      throws IOException, InterruptedException {
    long start = System.nanoTime();
    Process p = builder.redirectErrorStream(true).redirectOutput(log.toFile()).start();
    if (driver != null) {
      Thread t = new Thread(() -> driver.accept(p), "fhirbeam-bench-driver");
      t.setDaemon(true);
      t.start();
    }
    long peak = -1;
    double cpu = -1;
    Path proc = Path.of("/proc", Long.toString(p.pid()));
    while (p.isAlive()) {
      peak = Math.max(peak, peakRss(proc));
      cpu = Math.max(cpu, cpuSeconds(proc));
      Thread.sleep(20);
    }
    int code = p.waitFor();
    double wall = (System.nanoTime() - start) / 1e9;
    return new Measurement(code, wall, cpu, peak, Files.readString(log, StandardCharsets.UTF_8));
  }

  private static long peakRss(Path proc) {
    try {
      for (String line : Files.readAllLines(proc.resolve("status"))) {
        if (line.startsWith("VmHWM:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
      }
    } catch (IOException | RuntimeException e) {
      // the process ended between the check and the read
    }
    return -1;
  }

  private static double cpuSeconds(Path proc) {
    try {
      String stat = Files.readString(proc.resolve("stat"));
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      // fields 14 and 15 of /proc/pid/stat (utime, stime), counted after the command name
      return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / (double) CLOCK_TICKS_PER_SECOND;
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }
}
