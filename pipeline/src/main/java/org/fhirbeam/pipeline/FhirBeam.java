package org.fhirbeam.pipeline;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Callable;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.Durations;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.PipelineConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ScopeType;

/** The {@code fhirbeam} command line. Exit codes: 0 success, 1 the run failed, 2 bad input or usage. */
@Command(name = "fhirbeam", mixinStandardHelpOptions = true, versionProvider = FhirBeam.Version.class,
    description = "Maps hospital data (CSV, Parquet, JSON) to FHIR R4 resources with declarative YAML mappings,"
        + " on Apache Beam (DirectRunner or Spark) with DuckDB.",
    subcommands = {FhirBeam.Run.class, FhirBeam.CheckConfig.class, FhirBeam.PreviewCommand.class, ValidateCommand.class,
        FhirBeam.Report.class, org.fhirbeam.pipeline.bench.Bench.class,
        CommandLine.HelpCommand.class})
public final class FhirBeam implements Callable<Integer> {
  static final int EXIT_RUN_FAILED = 1;
  static final int EXIT_BAD_INPUT = 2;

  @Option(names = "--verbose", scope = ScopeType.INHERIT, description = "Print stack traces of errors.")
  boolean verbose;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  public static void main(String[] args) {
    // SLF4J binds its provider on first use. When two threads get there together (the validator is built beside
    // the planning), it replays their early log calls and prints a warning per logger: bind it here, first. Getting
    // a logger also starts log4j's context on this thread: a bench run once failed with a logger that had no log4j
    // logger behind it (a NullPointerException in the slf4j bridge at HAPI's first log call on the planning thread),
    // which points at a context that two threads started at once.
    org.slf4j.LoggerFactory.getLogger(FhirBeam.class);
    System.exit(execute(System.out, System.err, System.getenv(), args));
  }

  /** Runs the command line with the given streams and environment, returning the exit code. */
  public static int execute(PrintStream out, PrintStream err, Map<String, String> env, String... args) {
    FhirBeam top = new FhirBeam();
    CommandLine cl = new CommandLine(top);
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
      boolean verbose = top.verbose || parseResult.subcommand() != null
          && Boolean.TRUE.equals(parseResult.subcommand().matchedOptionValue("--verbose", false));
      int code = e instanceof InputException ? EXIT_BAD_INPUT : EXIT_RUN_FAILED;
      String message = e instanceof InputException || e instanceof JobRunner.UnbalancedRunException
          ? e.getMessage() : e.getClass().getSimpleName() + ": " + firstLine(rootMessage(e));
      err.println("error: " + message);
      if (verbose) {
        e.printStackTrace(err);
      } else if (code == EXIT_RUN_FAILED && !(e instanceof JobRunner.UnbalancedRunException)) {
        err.println("(run again with --verbose for details)");
      }
      return code;
    });
    Environment.set(env);
    return cl.execute(args);
  }

  /**
   * Runs a job as {@code fhirbeam run ARGS} does, for a program that calls the pipeline in its own JVM (a Databricks
   * JAR task): returns what the run did, or throws ({@link InputException} for bad options, configuration or input;
   * {@link JobRunner.UnbalancedRunException} when the counts do not balance; another exception when the run failed),
   * and never exits the JVM. {@code env} is the environment the configuration's {@code ${VAR}}s read. Progress goes
   * to standard error and the summary to standard output, as from the command line.
   */
  public static RunSummary run(Map<String, String> env, String... args) {
    Run run = new Run();
    CommandLine cl = new CommandLine(run);
    cl.setCaseInsensitiveEnumValuesAllowed(true);
    try {
      cl.parseArgs(args);
    } catch (CommandLine.ParameterException e) {
      throw new InputException(e.getMessage(), e);
    }
    Environment.set(env);
    return run.execute(System.out, System.err);
  }

  /** The installation directory (where config/ and testdata/ are). */
  public static Path home() {
    return Environment.home();
  }

  @Override
  public Integer call() {
    spec.commandLine().usage(spec.commandLine().getOut());
    return EXIT_BAD_INPUT;
  }

  private static String rootMessage(Throwable e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      if (t instanceof InputException) {
        break;
      }
      t = t.getCause();
    }
    return String.valueOf(t.getMessage());
  }

  private static String firstLine(String s) {
    int nl = s.indexOf('\n');
    return nl < 0 ? s : s.substring(0, nl);
  }

  /** The environment seen by configuration files, plus FHIRBEAM_HOME (the installation directory). */
  static final class Environment {
    private static Map<String, String> variables = Map.of();

    static void set(Map<String, String> env) {
      Map<String, String> v = new HashMap<>(env);
      v.putIfAbsent("FHIRBEAM_HOME", home().toString());
      variables = Map.copyOf(v);
    }

    static Map<String, String> variables() {
      return variables;
    }

    static Path home() {
      try {
        // The nearest folder above the code that holds the default job: pipeline/target/fhirbeam.jar,
        // pipeline/target/classes and the cluster's deploy/cluster/target/fhirbeam-cluster.jar lie below it.
        Path code = Path.of(FhirBeam.class.getProtectionDomain().getCodeSource().getLocation().toURI())
            .toAbsolutePath().normalize();
        for (Path dir = code.getParent(); dir != null; dir = dir.getParent()) {
          if (Files.isRegularFile(dir.resolve("config/pipelines/default.yaml"))) {
            return dir;
          }
        }
      } catch (URISyntaxException | NullPointerException e) {
        // no code location: the working directory, below
      }
      return Path.of("").toAbsolutePath();
    }

    static Path defaultConfig() {
      return Path.of(variables.get("FHIRBEAM_HOME"), "config", "pipelines", "default.yaml");
    }
  }

  /** {@code fhirbeam run}. */
  @Command(name = "run", mixinStandardHelpOptions = true,
      description = "Run a job: read the sources, build FHIR resources, write NDJSON, rejects, DuckDB tables"
          + " and run-summary.json. Without --config, runs the bundled default job on the sample patients.")
  static final class Run implements Callable<Integer> {
    @Option(names = "--config", paramLabel = "FILE",
        description = "Pipeline configuration (default: config/pipelines/default.yaml of the installation).")
    Path config;

    @Option(names = "--output", paramLabel = "DIR|URI", defaultValue = "output",
        description = "Output directory, or s3://bucket/prefix; its previous results are replaced"
            + " (default: ${DEFAULT-VALUE}).")
    String output;

    @Option(names = "--commit", paramLabel = "HOW", defaultValue = "auto",
        description = "How the run replaces the output: rename (a local directory swapped in), manifest (files under"
            + " runs/<run id>/ and a _manifest.json written last, for object storage and shared mounts without atomic"
            + " renames) or auto: manifest for s3:// outputs and, on Databricks, /Volumes/ paths, else rename"
            + " (default: auto).")
    JobRunner.Commit commit;

    @Option(names = "--runner", paramLabel = "RUNNER",
        description = "direct (Beam DirectRunner) or spark (Beam Spark runner: local[N] with N the cores, the master"
            + " spark-submit gives, or on Databricks the cluster's context); default: direct, on Databricks spark.")
    Runner runner;

    @Option(names = "--set", paramLabel = "KEY=VALUE", mapFallbackValue = "",
        description = "Override a configuration key (dotted path) for this run, e.g."
            + " --set sources.patients.path=data/*.csv. Repeatable.")
    Map<String, String> overrides = new LinkedHashMap<>();

    @Option(names = "--profile", description = "Print the time each stage took (plan, pipeline, verify,"
        + " write_files, load_duckdb, commit); run-summary.json always has them.")
    boolean profile;

    @Option(names = "--direct-checks",
        description = "Keep the DirectRunner's immutability and encodability checks on (slow; used by tests).")
    boolean directChecks;

    @Option(names = "--max-records", paramLabel = "N", description = "Streaming jobs: stop after N records of each"
        + " source (the windows read are committed).")
    long maxRecords;

    @Option(names = "--duration", paramLabel = "D", description = "Streaming jobs: stop after reading this long"
        + " (90s, 30m).")
    String duration;

    @Option(names = "--drain", description = "Streaming jobs: stop once every partition is read to where it ended"
        + " when the run began.")
    boolean drain;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      execute(new PrintStream(new WriterOutputStream(spec.commandLine().getOut()), true),
          new PrintStream(new WriterOutputStream(spec.commandLine().getErr()), true));
      return 0;
    }

    /** Plans and runs the job, prints its summary to {@code out} (progress to {@code err}) and returns it. */
    RunSummary execute(PrintStream out, PrintStream err) {
      Path file = config != null ? config : Environment.defaultConfig();
      Deployment deployment = Deployment.detect(Environment.variables());
      Runner chosen = deployment.runner(runner);
      chosen.prepare(deployment);
      try {
        long start = System.nanoTime();
        Map<String, String> settings = deployment.databricks() ? deployment.settings(
            new ConfigLoader(Environment.variables()).load(file, overrides), overrides) : overrides;
        JobPlan plan = JobPlan.create(file, settings, Environment.variables());
        double planSeconds = (System.nanoTime() - start) / 1e9;
        if (plan.config().streams()) {
          StreamRunner stream = new StreamRunner(plan, planSeconds, chosen, output, new StreamRunner.Limits(
              maxRecords, duration == null ? null : Durations.parse("--duration", duration), drain), directChecks,
              err, System.console() != null, Environment.variables());
          RunSummary summary = stream.run();
          summary.print(out, output, false, profile);
          return summary;
        }
        if (maxRecords > 0 || duration != null || drain) {
          throw new InputException("--max-records, --duration and --drain bound streaming jobs; " + file
              + " reads no stream");
        }
        JobRunner job = new JobRunner(plan, planSeconds, chosen, output, commit, directChecks, err,
            System.console() != null, deployment);
        RunSummary summary = job.run();
        summary.print(out, job.location(), job.byManifest(), profile);
        return summary;
      } finally {
        Runner.stopLocalSpark();
      }
    }
  }

  /** {@code fhirbeam check-config}. */
  @Command(name = "check-config", mixinStandardHelpOptions = true,
      description = "Check a pipeline configuration and its mappings (keys, types, FHIR paths, expressions), that"
          + " source paths match files, and the columns and SQL against the files' headers, without reading rows."
          + " Exit code 2 names file, line and key of each problem.")
  static final class CheckConfig implements Callable<Integer> {
    @Parameters(paramLabel = "FILE", description = "The pipeline configuration to check.")
    Path file;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a key, as for run.")
    Map<String, String> overrides = new LinkedHashMap<>();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      ConfigCheck.Checked checked = ConfigCheck.check(file, overrides, Environment.variables());
      PipelineConfig config = checked.config();
      checked.warnings().forEach(w -> spec.commandLine().getOut().println("warning: " + w));
      spec.commandLine().getOut().printf("OK: %s (%d source(s), %d mapping(s))%n", file, config.sources().size(),
          config.mappings().size());
      return 0;
    }
  }

  /** {@code fhirbeam preview}. */
  @Command(name = "preview", mixinStandardHelpOptions = true,
      description = "Run mappings on the first rows of their sources, without a pipeline or output, and print each"
          + " resource (pretty JSON) with the rule behind every element, or why the row is rejected."
          + " Prints row contents: for development data.")
  static final class PreviewCommand implements Callable<Integer> {
    @Option(names = "--config", paramLabel = "FILE",
        description = "Pipeline configuration (default: config/pipelines/default.yaml of the installation).")
    Path config;

    @Option(names = "--mapping", paramLabel = "NAME", description = "Only this mapping (default: all).")
    String mapping;

    @Option(names = "--rows", paramLabel = "N", defaultValue = "3",
        description = "Rows per mapping (default: ${DEFAULT-VALUE}).")
    int rows;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a key, as for run.")
    Map<String, String> overrides = new LinkedHashMap<>();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      if (rows < 1) {
        throw new CommandLine.ParameterException(spec.commandLine(), "--rows must be at least 1");
      }
      Path file = config != null ? config : Environment.defaultConfig();
      PipelineConfig loaded = new ConfigLoader(Environment.variables()).load(file, overrides);
      Preview.run(loaded, mapping, rows, new PrintStream(new WriterOutputStream(spec.commandLine().getOut()), true));
      return 0;
    }
  }

  /** {@code fhirbeam report}. */
  @Command(name = "report", mixinStandardHelpOptions = true,
      description = "Print the data-quality report of the latest run (counts only, no record values) and the path of"
          + " its HTML page: from a DuckDB database the runs loaded, or from an output committed by a manifest"
          + " (object storage, a Databricks Volume), given with --output.")
  static final class Report implements Callable<Integer> {
    @Option(names = "--db", paramLabel = "FILE", defaultValue = "data/fhir_mappings.db",
        description = "DuckDB database the runs loaded (default: ${DEFAULT-VALUE}).")
    Path db;

    @Option(names = "--output", paramLabel = "DIR|URI",
        description = "The run's output: a directory or URI committed by a manifest (_manifest.json), whose committed"
            + " run's report is printed; or the directory of a database's run, where report/quality.html is"
            + " (default: the one the run wrote).")
    String output;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws java.sql.SQLException, IOException {
      PrintStream out = new PrintStream(new WriterOutputStream(spec.commandLine().getOut()), true);
      com.fasterxml.jackson.databind.JsonNode manifest = output == null ? null : committedManifest();
      if (manifest != null) {
        String file = ObjectStoreCommit.reportOf(location(), manifest);
        if (file == null) {
          throw new InputException("the run committed in " + location() + " wrote no quality report");
        }
        QualityReport report;
        try {
          report = ObjectStoreCommit.readReport(file);
        } catch (IOException | RuntimeException e) {
          throw new InputException("the quality report " + file + " cannot be read: " + e, e);
        }
        report.print(out);
        out.println("  HTML report: " + file.replaceFirst("quality\\.json$", "quality.html"));
        return 0;
      }
      String path = db.toAbsolutePath().normalize().toString();
      if (!java.nio.file.Files.isRegularFile(db)) {
        throw new InputException("DuckDB database " + path + " does not exist; run fhirbeam run first");
      }
      QualityReport report;
      Path dir = output == null ? null : Path.of(output);
      try (java.sql.Connection c = org.fhirbeam.io.DuckDb.openFile(path,
          new org.fhirbeam.config.DuckDbSettings(path, true, null, 0, java.util.List.of()), true)) {
        String runId = QualityReport.latestRun(c);
        if (runId == null) {
          throw new InputException("DuckDB database " + path + " holds no quality figures; run fhirbeam run first");
        }
        report = QualityReport.load(c, runId);
        if (dir == null) {
          dir = Path.of(QualityReport.outputOf(c, runId));
        }
      }
      report.print(out);
      Path html = dir.resolve("report").resolve("quality.html").toAbsolutePath().normalize();
      out.println("  HTML report: " + html + (java.nio.file.Files.isRegularFile(html) ? "" : " (not found)"));
      return 0;
    }

    /** {@link #output} without a trailing slash: a URI, or an absolute path. */
    private String location() {
      String location = output.replaceAll("/+$", "");
      return org.fhirbeam.io.ObjectStorage.isRemote(location) ? location
          : Path.of(location).toAbsolutePath().normalize().toString();
    }

    /**
     * The manifest {@link #output} holds, or null for a local directory without one; an output on object storage
     * that holds none, or cannot be reached, is an error.
     */
    private com.fasterxml.jackson.databind.JsonNode committedManifest() {
      String location = location();
      boolean remote = org.fhirbeam.io.ObjectStorage.isRemote(location);
      try {
        if (remote) {
          org.fhirbeam.io.ObjectStorage.useBeforePipeline(null);
        }
        com.fasterxml.jackson.databind.JsonNode manifest = ObjectStoreCommit.committedManifest(location);
        if (manifest == null && remote) {
          throw new InputException("the output " + location + " holds no committed run (no "
              + ObjectStoreCommit.MANIFEST + ")");
        }
        return manifest;
      } catch (IOException | RuntimeException e) {
        if (e instanceof InputException i) {
          throw i;
        }
        throw new InputException("the output " + location + " cannot be reached: "
            + org.fhirbeam.io.DuckDb.firstLine(String.valueOf(e.getMessage())), e);
      }
    }
  }

  /** Reads the version Maven wrote into the jar. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() throws IOException {
      Properties p = new Properties();
      try (InputStream in = FhirBeam.class.getResourceAsStream("/fhirbeam-version.properties")) {
        if (in != null) {
          p.load(in);
        }
      }
      return new String[] {"fhirbeam " + p.getProperty("version", "unknown")
          + " (Beam " + p.getProperty("beam", "?") + ", HAPI FHIR " + p.getProperty("hapi", "?")
          + ", DuckDB " + p.getProperty("duckdb", "?") + ", Java " + System.getProperty("java.version") + ")"};
    }
  }
}
