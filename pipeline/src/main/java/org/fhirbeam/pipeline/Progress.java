package org.fhirbeam.pipeline;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.fhirbeam.data.Counters;
import org.fhirbeam.io.ReadTask;
import org.fhirbeam.transforms.CompiledMapping;

/**
 * Shows the stage of a run that is running, with its own counts: the pipeline's stages (mapping, FHIRPath rules,
 * validation) from the counters they keep, then the driver's phases (verifying, writing files, loading DuckDB). On a
 * terminal, one line redrawn in place; otherwise (logs, CI) a plain line when the stage changes and every ten
 * seconds, and each pipeline stage's final counts when the pipeline has finished. Runs on its own daemon thread;
 * {@link #close()} stops it.
 */
final class Progress implements AutoCloseable {
  /** The pipeline's stages, in the order their work flows. */
  enum Stage {
    MAPPING("mapping"), RULES("rules"), VALIDATION("validation");

    final String label;

    Stage(String label) {
      this.label = label;
    }
  }

  /**
   * What a job's pipeline has to do: its mappings, the files they read (a file read by two mappings counts twice)
   * and their bytes (0 where unknown), the mappings with FHIRPath rules, and whether it validates.
   */
  record Work(List<String> mappings, int files, long bytes, Set<String> withRules, boolean validation) {
    static Work of(JobPlan plan) {
      List<String> mappings = new ArrayList<>();
      Set<String> withRules = new LinkedHashSet<>();
      int files = 0;
      long bytes = 0;
      for (CompiledMapping m : plan.mappings()) {
        mappings.add(m.name());
        if (!m.fhirPathRules().isEmpty()) {
          withRules.add(m.name());
        }
        for (ReadTask t : plan.sources().get(m.source()).tasks()) {
          files++;
          bytes += t.bytes();
        }
      }
      return new Work(mappings, files, bytes, withRules, plan.config().validation().enabled());
    }

    /** The stages this pipeline runs. */
    List<Stage> stages() {
      List<Stage> stages = new ArrayList<>(List.of(Stage.MAPPING));
      if (!withRules.isEmpty()) {
        stages.add(Stage.RULES);
      }
      if (validation) {
        stages.add(Stage.VALIDATION);
      }
      return stages;
    }
  }

  /**
   * The pipeline's counts at one moment: millionths of files mapped ({@link Counters#filesMapped}), rows and bytes
   * read, and per later stage the resources that have reached it so far and those it has gone through.
   */
  record Counts(long fileShares, long rows, long bytes, long rulesIn, long rulesDone, long validationIn,
      long validationDone) {
    static final Counts NONE = new Counts(0, 0, 0, 0, 0, 0, 0);

    /** The counts in the pipeline's counters, by name. */
    static Counts of(Work work, Map<String, Long> counters) {
      long shares = 0;
      long rows = 0;
      long bytes = 0;
      long rulesIn = 0;
      long rulesDone = 0;
      long validationIn = 0;
      long validationDone = 0;
      for (String m : work.mappings()) {
        shares += counters.getOrDefault(Counters.filesMapped(m), 0L);
        rows += counters.getOrDefault(Counters.rowsIn(m), 0L);
        bytes += counters.getOrDefault(Counters.bytesMapped(m), 0L);
        // Repeated ids are dropped before the rules and validation see the resources.
        long mapped = counters.getOrDefault(Counters.mapped(m), 0L)
            - counters.getOrDefault(Counters.duplicates(m), 0L);
        if (work.withRules().contains(m)) {
          rulesIn += mapped;
          rulesDone += counters.getOrDefault(Counters.checked(Counters.RULES, m), 0L);
        }
        // What a reject rule took out never reaches validation.
        validationIn += mapped - counters.getOrDefault(Counters.ruleRejected(m), 0L);
        validationDone += counters.getOrDefault(Counters.checked(Counters.VALIDATION, m), 0L);
      }
      return new Counts(shares, rows, bytes, rulesIn, rulesDone, validationIn, validationDone);
    }

    long done(Stage s) {
      return switch (s) {
        case MAPPING -> rows;
        case RULES -> rulesDone;
        case VALIDATION -> validationDone;
      };
    }
  }

  /**
   * The stage running: the first whose work is not all done (a later stage cannot finish before the one feeding it),
   * or the last when all are.
   */
  static Stage stage(Work w, Counts c) {
    if (c.fileShares() < w.files() * Counters.FILE) {
      return Stage.MAPPING;
    }
    if (!w.withRules().isEmpty() && c.rulesDone() < c.rulesIn()) {
      return Stage.RULES;
    }
    if (w.validation() && c.validationDone() < c.validationIn()) {
      return Stage.VALIDATION;
    }
    List<Stage> stages = w.stages();
    return stages.get(stages.size() - 1);
  }

  /**
   * The line of a running stage, {@code seconds} after it began with the counts {@code atStart}: its counts, its rate
   * since then and, where the rest of its work is known, how long it needs at that rate. Mapping's rest is the bytes
   * left to read (unknown for a database's rows); a later stage's is known once the stages before it are done.
   */
  static String line(Work w, Counts c, Stage s, double seconds, Counts atStart) {
    double rate = (c.done(s) - atStart.done(s)) / Math.max(seconds, 1e-3);
    if (s == Stage.MAPPING) {
      String line = String.format(Locale.ROOT, "mapping: %s, %,d rows, %,d rows/s", files(w, c), c.rows(),
          Math.round(rate));
      double byteRate = (c.bytes() - atStart.bytes()) / Math.max(seconds, 1e-3);
      return line + eta(w.bytes() - c.bytes(), c.bytes() > 0 ? byteRate : 0);
    }
    long total = s == Stage.RULES ? c.rulesIn() : c.validationIn();
    String line = String.format(Locale.ROOT, "%s: %,d of %,d resources, %,d/s", s.label, c.done(s), total,
        Math.round(rate));
    return stage(w, c) == s ? line + eta(total - c.done(s), rate) : line;
  }

  /** The final line of a stage, once the pipeline has finished. */
  static String done(Work w, Counts c, Stage s) {
    return switch (s) {
      case MAPPING -> String.format(Locale.ROOT, "mapping: %s, %,d rows", files(w, c), c.rows());
      case RULES -> String.format(Locale.ROOT, "rules: %,d of %,d resources", c.rulesDone(), c.rulesIn());
      case VALIDATION -> String.format(Locale.ROOT, "validation: %,d of %,d resources", c.validationDone(),
          c.validationIn());
    };
  }

  private static String files(Work w, Counts c) {
    return String.format(Locale.ROOT, "%,d of %,d file%s", c.fileShares() / Counters.FILE, w.files(),
        w.files() == 1 ? "" : "s");
  }

  /** ", ETA ..." for {@code left} units at {@code rate} per second; empty when either is unknown. */
  static String eta(long left, double rate) {
    if (left <= 0 || rate <= 0) {
      return "";
    }
    long seconds = (long) Math.ceil(left / rate);
    return seconds < 120 ? ", ETA " + seconds + " s" : ", ETA " + (seconds + 59) / 60 + " min";
  }

  /** The line of a phase of the driver, {@code seconds} after it began. */
  static String phaseLine(String phase, double seconds) {
    return seconds < 1 ? phase : String.format(Locale.ROOT, "%s: %.0f s", phase, seconds);
  }

  /** What to show: a stage's line, and the stage, whose change a plain (not a terminal) output reports at once. */
  private record Shown(String stage, String line) {}

  private final PrintStream out;
  private final boolean terminal;
  private final Thread thread;
  private volatile Supplier<Shown> current;
  private volatile boolean done;
  // Guarded by this: what was printed last (for plain output, when), and how wide it was, for the terminal.
  private String lastStage;
  private String lastLine = "";
  private long lastPrint = System.nanoTime();

  Progress(PrintStream out, boolean terminal) {
    this(out, terminal, terminal ? 500 : 1000);
  }

  /** {@code tickMillis}: how often the line is brought up to date. */
  Progress(PrintStream out, boolean terminal, long tickMillis) {
    this.out = out;
    this.terminal = terminal;
    this.thread = new Thread(() -> {
      while (!done) {
        try {
          Thread.sleep(tickMillis);
        } catch (InterruptedException e) {
          break;
        }
        Supplier<Shown> show = current;
        if (show != null) {
          Shown shown = show.get();
          synchronized (this) {
            // Not when a phase has begun meanwhile (it has shown itself) or the run is over.
            if (current == show && !done) {
              show(shown, false);
            }
          }
        }
      }
    }, "fhirbeam-progress");
    thread.setDaemon(true);
    thread.start();
  }

  /**
   * Follows a running pipeline through {@code counters} (the pipeline's counters by name, read while it runs; an
   * empty map when they cannot be read).
   */
  void pipeline(Work work, Supplier<Map<String, Long>> counters) {
    long start = System.nanoTime();
    // Only the progress thread reads and writes these, one call at a time.
    Stage[] stage = {Stage.MAPPING};
    long[] since = {start};
    Counts[] atStart = {Counts.NONE};
    current = () -> {
      Counts c = Counts.of(work, counters.get());
      Stage now = stage(work, c);
      if (now != stage[0]) {
        stage[0] = now;
        since[0] = System.nanoTime();
        atStart[0] = c;
      }
      return new Shown(now.label, line(work, c, now, (System.nanoTime() - since[0]) / 1e9, atStart[0]));
    };
  }

  /** Follows a stream: {@code line} says how far it has got (on plain output, every 10 s). */
  void stream(Supplier<String> line) {
    current = () -> new Shown("stream", line.get());
  }

  /** The pipeline has finished with {@code counters}: on plain output, each stage's final counts. */
  void pipelineDone(Work work, Map<String, Long> counters) {
    Counts c = Counts.of(work, counters);
    synchronized (this) {
      current = null;
      if (!terminal) {
        for (Stage s : work.stages()) {
          out.println(done(work, c, s));
        }
        lastStage = null;
        out.flush();
      }
    }
  }

  /** A phase of the driver begins: shown at once, then with its running time. */
  synchronized void phase(String phase) {
    long start = System.nanoTime();
    current = () -> new Shown(phase, phaseLine(phase, (System.nanoTime() - start) / 1e9));
    show(current.get(), true);
  }

  private synchronized void show(Shown shown, boolean now) {
    long time = System.nanoTime();
    String line = shown.line();
    if (terminal) {
      if (line.equals(lastLine)) {
        return;
      }
      // Spaces over what is left of a longer line before.
      out.print("\r" + line + " ".repeat(Math.max(0, lastLine.length() - line.length())));
    } else if (now || !shown.stage().equals(lastStage) || time - lastPrint >= 10_000_000_000L) {
      out.println(line);
      lastStage = shown.stage();
      lastPrint = time;
    } else {
      return;
    }
    lastLine = line;
    out.flush();
  }

  @Override
  public void close() {
    synchronized (this) {
      done = true;
      current = null;
    }
    thread.interrupt();
    try {
      thread.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    synchronized (this) {
      if (terminal && !lastLine.isEmpty()) {
        out.print("\r" + " ".repeat(lastLine.length()) + "\r");
        out.flush();
      }
    }
  }
}
