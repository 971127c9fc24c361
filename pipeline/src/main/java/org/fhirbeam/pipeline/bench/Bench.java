package org.fhirbeam.pipeline.bench;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.StrictErrorHandler;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.BufferedReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.fhirbeam.io.FileTrees;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code fhirbeam bench}: generates deterministic patient data once, then runs each case as a separate process
 * measured from outside, {@code --runs} times with the cases taking turns, and prints medians with each case's
 * ratio to the DuckDB-only baseline measured in the same run.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = "Benchmark: the default job and the Synthea job as shipped (with their DuckDB databases), the"
        + " Patient mapping on the DirectRunner and on Spark local and the Synthea mapping set with NDJSON only, and a"
        + " DuckDB-only SQL baseline, each as its own process (wall time, CPU time, peak RSS).")
public final class Bench implements Callable<Integer> {
  @Option(names = "--rows", defaultValue = "1000000", description = "Patient rows; for the synthea case, input rows"
      + " over all its files (default: ${DEFAULT-VALUE}).")
  long rows;

  @Option(names = "--runs", defaultValue = "3", description = "Runs per case; medians are reported"
      + " (default: ${DEFAULT-VALUE}).")
  int runs;

  @Option(names = "--data", defaultValue = "bench-data", description = "Where generated data is cached"
      + " (default: ${DEFAULT-VALUE}).")
  Path data;

  @Option(names = "--cases", split = ",",
      defaultValue = "direct-duckdb,synthea-duckdb,direct,spark,synthea,duckdb-sql,duckdb-sql-db,direct-sample-1pct,"
          + "validate-patient,validate-synthea,analytics",
      description = "Cases to run (default: ${DEFAULT-VALUE}).")
  List<String> cases;

  @Option(names = "--validate-rows", defaultValue = "5000", description = "Input rows of the sets that the"
      + " validate-* cases validate in full (default: ${DEFAULT-VALUE}).")
  long validateRows;

  @Option(names = "--java-opts",
      defaultValue = "${env:FHIRBEAM_LAUNCHER_JAVA_OPTS:--Xmx1g -XX:TieredStopAtLevel=1 -XX:+UseSerialGC}",
      description = "JVM options of the measured processes (default: the launcher's, ${DEFAULT-VALUE}).")
  String javaOpts;

  @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as a JSON array.")
  Path json;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  /**
   * Whether case {@code c} runs a streaming job while the bench produces to its topic (latency and lag, not a
   * drain's throughput): {@code stream-trickle} and {@code stream-sustained}, on the DirectRunner or ({@code -spark})
   * on Spark.
   */
  private static boolean timedStream(String c) {
    return c.startsWith("stream-trickle") || c.startsWith("stream-sustained");
  }

  /** The cases that map the same generated Patient rows, so write the same resources. */
  private static final List<String> PATIENT_CASES = List.of("direct", "direct-duckdb", "spark", "spark-cluster",
      "direct-delta", "spark-delta", "direct-validated",
      "direct-sample-1pct", "duckdb-sql", "duckdb-sql-db", "stream-direct", "stream-spark");

  /** The cases that read a source without mapping it, printing rows and seconds, and what each reads. */
  private static final Map<String, String> READ_CASES = Map.of("source", "the Patient CSV with DuckDB",
      "source-parquet", "the Patient Parquet file with DuckDB", "parquetio",
      "the Patient Parquet file with Beam's ParquetIO on the DirectRunner", "source-jdbc",
      "the Patient rows in PostgreSQL with our key-range reader into DuckDB", "jdbcio",
      "the Patient rows in PostgreSQL with Beam's JdbcIO on the DirectRunner");

  /** The summary line of a run: its rows in and resources out, as the driver printed them. */
  private static final Pattern BALANCE = Pattern.compile("balance: rows in ([\\d,]+) = resources ([\\d,]+) \\+"
      + " rejected [\\d,]+: OK");

  /** What the runs of one case measured so far. */
  private static final class CaseRuns {
    final List<ProcessMeter.Measurement> measurements = new ArrayList<>();
    long resources = -1;
    long rowsIn;

    CaseRuns(long rowsIn) {
      this.rowsIn = rowsIn;
    }
  }

  /** The medians of one case. */
  record Result(String name, String runner, long rows, long resources, int runs, double wallSeconds,
      double cpuSeconds, long peakRssBytes) {
    double rowsPerSecond() {
      return rows / wallSeconds;
    }

    double resourcesPerSecond() {
      return resources / wallSeconds;
    }
  }

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    if (rows < 1 || runs < 1) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--rows and --runs must be at least 1");
    }
    Path dir = data.toAbsolutePath().normalize();
    out.printf(Locale.ROOT, "Generating (or reusing) %,d rows in %s ...%n", rows, dir);
    out.flush();
    Path csv = BenchData.csv(dir, rows);
    Path parquet = BenchData.parquet(dir, rows);
    Path synthea = cases.contains("synthea") || cases.contains("synthea-duckdb") || cases.contains("synthea-validated")
        ? SyntheaBenchData.folder(dir, rows)
        : null;
    Path work = Files.createTempDirectory("fhirbeam-bench");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> jvm = jvm(java, "FHIRBEAM_CDS_OPTS");
    List<String> sparkJvm = jvm(java, "FHIRBEAM_SPARK_CDS_OPTS");

    // The validate-* cases validate the output of a run on a smaller input, made once here and not measured;
    // the analytics case queries the DuckDB database of a run on all rows, made the same way.
    Map<String, Path> toValidate = new LinkedHashMap<>();
    Path analyticsDb = work.resolve("analytics.db");
    if (cases.contains("analytics")) {
      List<String> cmd = new ArrayList<>(jvm);
      cmd.addAll(List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "run", "--output",
          work.resolve("analytics-input").toString(), "--set", "sources.patients.path=" + csv, "--set",
          "duckdb.database=" + analyticsDb));
      ProcessMeter.Measurement m = ProcessMeter.run(cmd, work.resolve("analytics-input.log"));
      if (m.exitCode() != 0) {
        out.printf("preparing analytics failed (exit %d); its output is in %s%n", m.exitCode(),
            work.resolve("analytics-input.log"));
        return 1;
      }
    }
    for (String c : cases) {
      if (c.startsWith("validate-")) {
        Path prepared = work.resolve(c + "-input");
        List<String> cmd = new ArrayList<>(jvm);
        cmd.addAll(List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "run", "--output", prepared.toString(),
            "--set", "sinks.duckdb.enabled=false", "--set", "validation.mode=off"));
        switch (c.replace("-full", "")) {
          case "validate-patient" -> cmd.addAll(List.of("--set", "sources.patients.path="
              + BenchData.csv(dir, validateRows)));
          case "validate-synthea" -> cmd.addAll(List.of("--config", org.fhirbeam.pipeline.FhirBeam.home()
              .resolve("config/pipelines/synthea.yaml").toString(), "--set", "input_dir="
              + SyntheaBenchData.folder(dir, validateRows)));
          default -> throw new CommandLine.ParameterException(spec.commandLine(), "unknown case '" + c + "'");
        }
        ProcessMeter.Measurement m = ProcessMeter.run(cmd, work.resolve(c + "-input.log"));
        if (m.exitCode() != 0) {
          out.printf("preparing %s failed (exit %d); its output is in %s%n", c, m.exitCode(),
              work.resolve(c + "-input.log"));
          return 1;
        }
        toValidate.put(c, prepared.resolve("fhir"));
      }
    }

    try (ClusterCase cluster = cases.contains("spark-cluster") ? ClusterCase.start(csv, opens()) : null;
        DatabaseCase database = cases.contains("source-jdbc") || cases.contains("jdbcio")
            ? DatabaseCase.start(csv, work) : null;
        StreamCase stream = cases.stream().anyMatch(c -> c.startsWith("stream-")) ? StreamCase.start(csv, work)
            : null) {
      return measure(out, dir, csv, parquet, synthea, work, jvm, sparkJvm, toValidate, analyticsDb, cluster,
          database, stream);
    } catch (IllegalStateException e) {
      out.println(e.getMessage());
      return 1;
    }
  }

  /** Runs the cases turn by turn and prints what they measured. */
  private int measure(PrintWriter out, Path dir, Path csv, Path parquet, Path synthea, Path work, List<String> jvm,
      List<String> sparkJvm, Map<String, Path> toValidate, Path analyticsDb, ClusterCase cluster,
      DatabaseCase database, StreamCase stream) throws Exception {
    Map<String, Result> results = new LinkedHashMap<>();
    Map<String, Double> validationRates = new LinkedHashMap<>();
    Map<String, List<Double>> readRates = new LinkedHashMap<>();
    Map<String, List<Double>> queryMillis = new LinkedHashMap<>();
    Map<String, List<Double>> queryP90 = new LinkedHashMap<>();
    long analyticsRss = -1;
    Map<String, CaseRuns> measured = new LinkedHashMap<>();
    cases.forEach(c -> measured.put(c, new CaseRuns(rows)));
    // Run by run, each case once (a, b, a, b, ...): a slow minute of the shared machine then slows every case's
    // run of that round, not all the runs of one case.
    for (int r = 0; r < runs; r++) {
      for (String c : cases) {
        CaseRuns state = measured.get(c);
        List<ProcessMeter.Measurement> ms = state.measurements;
        Path outDir = work.resolve(c + "-" + r);
        List<String> cmd = new ArrayList<>(c.startsWith("spark") || c.equals("stream-spark") ? sparkJvm : jvm);
        switch (c) {
          case "direct", "direct-duckdb", "spark", "direct-delta", "spark-delta", "direct-validated" -> {
            cmd.addAll(List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "run", "--runner",
                c.startsWith("spark") ? "spark" : "direct",
                "--output", outDir.toString(), "--set", "sources.patients.path=" + csv));
            if (c.equals("direct-validated")) {
              // Compiled validation against base R4's Patient (the default mapping claims no profile).
              cmd.addAll(List.of("--set", "validation.mode=compiled"));
            }
            if (c.endsWith("-delta")) {
              // The NDJSON-only case's run, also writing a Delta table; each run its own.
              cmd.addAll(List.of("--set", "sinks.delta.enabled=true", "--set",
                  "sinks.delta.location=" + outDir.resolve("delta")));
            }
            if (c.equals("direct-duckdb")) {
              // The default job as shipped: its database, raw copy and views included.
              cmd.addAll(List.of("--set", "duckdb.database=" + outDir.resolve("fhir.db")));
            } else {
              cmd.addAll(List.of("--set", "sinks.duckdb.enabled=false"));
            }
          }
          case "direct-sample-1pct" -> cmd.addAll(List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "run",
              "--output", outDir.toString(), "--set", "sources.patients.path=" + csv, "--set",
              "sinks.duckdb.enabled=false", "--set", "validation.mode=sample", "--set", "validation.sample_rate=0.01"));
          case "synthea", "synthea-duckdb", "synthea-validated" -> cmd.addAll(List.of(
              org.fhirbeam.pipeline.FhirBeam.class.getName(), "run",
              "--config", org.fhirbeam.pipeline.FhirBeam.home().resolve("config/pipelines/synthea.yaml").toString(),
              "--output", outDir.toString(), "--set", "input_dir=" + synthea, "--set", "validation.mode="
                  + (c.equals("synthea-validated") ? "compiled" : "off"),
              "--set", c.equals("synthea-duckdb") ? "duckdb.database=" + outDir.resolve("fhir.db")
                  : "sinks.duckdb.enabled=false"));
          case "validate-patient", "validate-synthea", "validate-patient-full", "validate-synthea-full" -> cmd.addAll(
              List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "validate", toValidate.get(c).toString(),
                  "--package", org.fhirbeam.pipeline.FhirBeam.home().resolve(
                      "config/packages/hl7.fhir.us.core-3.1.1.tgz").toString(),
                  "--mode", c.endsWith("-full") ? "full" : "compiled"));
          case "stream-trickle", "stream-sustained", "stream-trickle-spark", "stream-sustained-spark" -> {
            // Run below, while this process produces to the topic.
          }
          case "stream-direct", "stream-spark" -> {
            cmd.addAll(List.of(org.fhirbeam.pipeline.FhirBeam.class.getName(), "run", "--runner",
                c.equals("stream-spark") ? "spark" : "direct", "--config", stream.config.toString(), "--output",
                outDir.toString(), "--drain"));
            // Into NDJSON and DuckDB on the DirectRunner; into NDJSON and Delta tables on Spark.
            cmd.addAll(c.equals("stream-spark") ? List.of("--set", "sinks.duckdb.enabled=false", "--set",
                "sinks.delta.enabled=true", "--set", "sinks.delta.location=" + outDir.resolve("delta"))
                : List.of("--set", "duckdb.database=" + outDir.resolve("fhir.db")));
          }
          case "spark-cluster" -> {
            // Submitted below: the driver is the measured process; the executors run in the workers' JVMs.
          }
          case "source" -> cmd.addAll(List.of(SourceBench.class.getName(), csv.toString()));
          case "source-parquet" -> cmd.addAll(List.of(SourceBench.class.getName(), parquet.toString()));
          case "parquetio" -> cmd.addAll(List.of(ParquetIoBench.class.getName(), parquet.toString()));
          case "source-jdbc" -> cmd.addAll(List.of(SourceBench.class.getName(), database.config.toString()));
          case "jdbcio" -> {
            cmd.add(JdbcIoBench.class.getName());
            cmd.addAll(database.jdbcIoArguments());
          }
          case "analytics" -> cmd.addAll(List.of(AnalyticsBench.class.getName(), analyticsDb.toString()));
          case "duckdb-sql", "duckdb-sql-db" -> {
            Files.createDirectories(outDir);
            cmd.addAll(List.of(DuckDbBaseline.class.getName(), csv.toString(),
                outDir.resolve("Patient.ndjson").toString()));
            if (c.equals("duckdb-sql-db")) {
              cmd.add(outDir.resolve("fhir.db").toString());
            }
          }
          default -> throw new CommandLine.ParameterException(spec.commandLine(), "unknown case '" + c
              + "' (known: direct-duckdb, synthea-duckdb, direct, spark, spark-cluster, direct-delta, spark-delta,"
              + " direct-validated, synthea-validated, stream-direct, stream-spark, stream-trickle,"
              + " stream-sustained, stream-trickle-spark, stream-sustained-spark,"
              + " synthea, duckdb-sql,"
              + " duckdb-sql-db, direct-sample-1pct,"
              + " validate-patient, validate-synthea, validate-patient-full, validate-synthea-full, source,"
              + " analytics)");
        }
        if (timedStream(c)) {
          // A job that runs while this process produces: latency and lag, not a drain's throughput.
          boolean trickle = c.startsWith("stream-trickle");
          boolean spark = c.endsWith("-spark");
          StreamCase.Timed t = stream.timed(spark ? sparkJvm : jvm, spark ? "spark" : "direct", outDir,
              work.resolve(c + "-" + r + ".log"), trickle ? 1_000 : 20_000, trickle ? 60 : 300);
          if (t.measurement().exitCode() != 0 || t.committed() != t.produced()) {
            out.printf("case %s failed (exit %d, %,d of %,d records committed); its output is in %s%n", c,
                t.measurement().exitCode(), t.committed(), t.produced(), work.resolve(c + "-" + r + ".log"));
            return 1;
          }
          ms.add(t.measurement());
          state.resources = 0;
          state.rowsIn = t.produced();
          out.printf(Locale.ROOT, "  %-18s run %d: %,d records at %,d/s; produce to commit p50 %.1f s, p95 %.1f s,"
              + " max %.1f s; lag (records not yet committed, sampled every 5 s) at most %,d in the first minute,"
              + " %,d in the last; %,6d MB peak RSS%n", c, r + 1, t.produced(), trickle ? 1_000 : 20_000, t.p50(),
              t.p95(), t.max(), t.lagFirstMinute(), t.lagLastMinute(), t.measurement().peakRssBytes() >> 20);
          out.flush();
          FileTrees.deleteTree(outDir);
          continue;
        }
        ProcessMeter.Measurement m = c.equals("spark-cluster")
            ? ProcessMeter.run(cluster.submission(c + "-" + r, "s3://" + ClusterCase.BUCKET + "/out/" + c + "-" + r),
                work.resolve(c + "-" + r + ".log"))
            : ProcessMeter.run(cmd, work.resolve(c + "-" + r + ".log"));
        if (c.startsWith("validate-")) {
          // Exit code 1 means errors were found, which is a result, not a failure of the case.
          Matcher rate = Pattern.compile(
              "VALID: ([\\d,]+) resource.*(?:validator start-up|loading definitions) ([\\d.]+) s .*; validation ([\\d.]+) s", Pattern.DOTALL)
              .matcher(m.output());
          if (m.exitCode() > 1 || !rate.find()) {
            out.printf("case %s failed (exit %d); its output is in %s%n", c, m.exitCode(), work.resolve(c + "-" + r
                + ".log"));
            return 1;
          }
          long checked = Long.parseLong(rate.group(1).replace(",", ""));
          double seconds = Double.parseDouble(rate.group(3));
          validationRates.merge(c, checked / seconds, (a, b) -> a + b);
          ms.add(m);
          state.resources = checked;
          state.rowsIn = checked;
          out.printf(Locale.ROOT, "  %-18s run %d: %6.2f s wall (validator start-up %s s, validating %.1f s:"
              + " %,.0f resources/s), %,6d MB peak RSS%n", c, r + 1, m.wallSeconds(), rate.group(2), seconds,
              checked / seconds, m.peakRssBytes() >> 20);
          out.flush();
          continue;
        }
        if (m.exitCode() != 0) {
          out.printf("case %s failed (exit %d); its output is in %s%n", c, m.exitCode(), work.resolve(c + "-" + r
              + ".log"));
          return 1;
        }
        if (c.equals("analytics")) {
          Matcher q = Pattern.compile("(?m)^query (\\S+) ([\\d.]+) ([\\d.]+) (\\d+)$").matcher(m.output());
          StringBuilder line = new StringBuilder();
          while (q.find()) {
            queryMillis.computeIfAbsent(q.group(1), k -> new ArrayList<>()).add(Double.parseDouble(q.group(2)));
            queryP90.computeIfAbsent(q.group(1), k -> new ArrayList<>()).add(Double.parseDouble(q.group(3)));
            line.append(String.format(Locale.ROOT, " %s %s ms", q.group(1), q.group(2)));
          }
          state.resources = 0;
          ms.add(m);
          out.printf(Locale.ROOT, "  %-18s run %d:%s%n", c, r + 1, line);
          out.flush();
          continue;
        }
        if (READ_CASES.containsKey(c)) {
          // Rows, then the seconds spent reading: the rate with the JVM's start and the planning excluded.
          List<String> lines = m.output().strip().lines().toList();
          long read = Long.parseLong(lines.get(lines.size() - 2).strip());
          double seconds = Double.parseDouble(lines.get(lines.size() - 1).strip());
          readRates.computeIfAbsent(c, k -> new ArrayList<>()).add(read / seconds);
          state.resources = 0;
          state.rowsIn = read;
          ms.add(m);
          out.printf(Locale.ROOT, "  %-18s run %d: %6.2f s wall, %6.2f s CPU, %,6d MB peak RSS; reading alone %.2f s"
              + " (%,.0f rows/s)%n", c, r + 1, m.wallSeconds(), m.cpuSeconds(), m.peakRssBytes() >> 20, seconds,
              read / seconds);
          out.flush();
          continue;
        }
        boolean baseline = c.startsWith("duckdb-sql");
        long produced;
        String more = "";
        if (c.equals("spark-cluster")) {
          // Its output is on the S3 test server: checked by the driver's balance line.
          Matcher balance = BALANCE.matcher(m.output());
          if (!balance.find()) {
            out.printf("case %s did not balance; its output is in %s%n", c, work.resolve(c + "-" + r + ".log"));
            return 1;
          }
          produced = Long.parseLong(balance.group(2).replace(",", ""));
          state.rowsIn = Long.parseLong(balance.group(1).replace(",", ""));
          Matcher stages = Pattern.compile("stages: (.*)").matcher(m.output());
          more = " (the driver's)" + (stages.find() ? "; stages " + stages.group(1) : "");
        } else {
          produced = baseline ? verifyBaseline(outDir.resolve("Patient.ndjson"), m.output()) : verify(outDir);
          if (!baseline) {
            state.rowsIn = new ObjectMapper().readTree(outDir.resolve("run-summary.json").toFile()).get("rows_in")
                .asLong();
          }
        }
        if (state.resources >= 0 && produced != state.resources) {
          out.printf("case %s produced %d resources, then %d%n", c, state.resources, produced);
          return 1;
        }
        state.resources = produced;
        ms.add(m);
        out.printf(Locale.ROOT, "  %-18s run %d: %6.2f s wall, %6.2f s CPU, %,6d MB peak RSS%s%n", c, r + 1,
            m.wallSeconds(), m.cpuSeconds(), m.peakRssBytes() >> 20, more);
        out.flush();
        FileTrees.deleteTree(outDir);
      }
    }
    for (String c : cases) {
      CaseRuns state = measured.get(c);
      List<ProcessMeter.Measurement> ms = state.measurements;
      if (timedStream(c)) {
        continue; // latency and lag: printed run by run above
      }
      if (c.equals("analytics")) {
        // Query times, not a throughput: printed in their own table below.
        analyticsRss = ms.stream().mapToLong(ProcessMeter.Measurement::peakRssBytes).max().orElse(-1);
        continue;
      }
      results.put(c, new Result(c, c.startsWith("spark") || c.equals("stream-spark") ? "spark"
          : c.startsWith("duckdb-sql") ? "duckdb" : "direct",
          state.rowsIn, state.resources, runs,
          median(ms.stream().mapToDouble(ProcessMeter.Measurement::wallSeconds).toArray()),
          median(ms.stream().mapToDouble(ProcessMeter.Measurement::cpuSeconds).toArray()),
          ms.stream().mapToLong(ProcessMeter.Measurement::peakRssBytes).max().orElse(-1)));
    }
    // The baseline is a fair comparison only while it writes what the pipeline writes from the same rows.
    Map<String, Long> patientCounts = new LinkedHashMap<>();
    for (String c : PATIENT_CASES) {
      if (results.containsKey(c)) {
        patientCounts.put(c, results.get(c).resources());
      }
    }
    if (patientCounts.values().stream().distinct().count() > 1) {
      out.printf("the Patient cases wrote different numbers of resources from the same rows: %s%n", patientCounts);
      return 1;
    }
    FileTrees.deleteTree(work);
    if (!results.isEmpty()) {
      print(out, results);
    }
    Map<String, Double> readMedians = new LinkedHashMap<>();
    readRates.forEach((c, rates) -> {
      readMedians.put(c, median(rates.stream().mapToDouble(Double::doubleValue).toArray()));
      out.printf(Locale.ROOT, "%n%s: reading %s alone %,.0f rows/s (median of %d run(s), JVM start and planning"
          + " excluded; the table's rows/s include them)%n", c, READ_CASES.get(c), readMedians.get(c), rates.size());
    });
    if (readMedians.containsKey("parquetio") && readMedians.containsKey("source-parquet")) {
      out.printf(Locale.ROOT, "parquetio: %.2fx source-parquet (Beam's ParquetIO against DuckDB, reading the same"
          + " file)%n", readMedians.get("parquetio") / readMedians.get("source-parquet"));
    }
    if (readMedians.containsKey("jdbcio") && readMedians.containsKey("source-jdbc")) {
      out.printf(Locale.ROOT, "jdbcio: %.2fx source-jdbc (Beam's JdbcIO against our reader, the same table in the"
          + " same %d key ranges)%n", readMedians.get("jdbcio") / readMedians.get("source-jdbc"),
          DatabaseCase.PARTITIONS);
    }
    if (results.containsKey("spark-cluster") && results.containsKey("direct")) {
      out.printf(Locale.ROOT, "%nspark-cluster: the %,d-row Patient job submitted to a standalone cluster of %d"
          + " workers x 1 core, its input and output on the S3 test server: %,.0f rows/s, %.2fx the direct case"
          + " (DirectRunner, local files) of this bench run; its CPU and RSS are the driver's alone%n",
          rows, ClusterCase.WORKERS, results.get("spark-cluster").rowsPerSecond(),
          results.get("spark-cluster").rowsPerSecond() / results.get("direct").rowsPerSecond());
    }
    if (!queryMillis.isEmpty()) {
      out.printf(Locale.ROOT, "%nanalytics: queries on the DuckDB database of the %,d-row Patient run, warm, over JDBC"
          + " (%d executions after %d warm-up ones per run; medians over %d run(s))%n", rows, AnalyticsBench.TIMED,
          AnalyticsBench.WARM_UP, runs);
      out.printf("%-22s %12s %12s%n", "query", "median ms", "p90 ms");
      queryMillis.forEach((name, values) -> out.printf(Locale.ROOT, "%-22s %12.2f %12.2f%n", name,
          median(values.stream().mapToDouble(Double::doubleValue).toArray()),
          median(queryP90.get(name).stream().mapToDouble(Double::doubleValue).toArray())));
    }
    if (!validationRates.isEmpty()) {
      out.println();
      validationRates.forEach((c, sum) -> out.printf(Locale.ROOT, "%s: full validation %,.0f resources/s (mean of"
          + " %d run(s), start-up excluded; HAPI's validator on %d cores)%n", c, sum / runs, runs,
          Runtime.getRuntime().availableProcessors()));
      Result plain = results.get("direct");
      Result sampled = results.get("direct-sample-1pct");
      if (plain != null && sampled != null) {
        out.printf(Locale.ROOT, "1%% sampled validation keeps %.0f%% of the unvalidated Patient throughput%n",
            100 * sampled.rowsPerSecond() / plain.rowsPerSecond());
      }
    }
    if (json != null) {
      writeJson(results, queryMillis, analyticsRss);
    }
    return 0;
  }

  /**
   * The command line that starts a measured process: this JVM's java with the bench's options and, so that it starts as
   * `./fhirbeam run` does, the launcher's class-data-sharing archive for its runner (named by environment variable
   * {@code cdsVariable}, when the launcher set it), and Spark's module openings.
   */
  private List<String> jvm(String java, String cdsVariable) throws java.io.IOException, java.net.URISyntaxException {
    List<String> jvm = new ArrayList<>(List.of(java));
    jvm.addAll(Arrays.asList(javaOpts.trim().split("\\s+")));
    String cds = System.getenv(cdsVariable);
    if (cds != null && !cds.isBlank()) {
      jvm.addAll(Arrays.asList(cds.trim().split("\\s+")));
    }
    jvm.addAll(opens());
    jvm.addAll(List.of("-cp", System.getProperty("java.class.path")));
    return jvm;
  }

  /**
   * The {@code --add-opens} this JVM runs with (Spark needs them), whether given on the command line (tests) or
   * by the runnable jar's manifest (the launcher), for the measured processes.
   */
  private static List<String> opens() throws java.io.IOException, java.net.URISyntaxException {
    List<String> out = new ArrayList<>();
    for (String arg : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (arg.startsWith("--add-opens")) {
        out.add(arg);
      }
    }
    Path code = Path.of(Bench.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    if (Files.isRegularFile(code)) {
      try (java.util.jar.JarFile jar = new java.util.jar.JarFile(code.toFile())) {
        String attribute = jar.getManifest().getMainAttributes().getValue("Add-Opens");
        if (attribute != null) {
          for (String module : attribute.trim().split("\\s+")) {
            out.add("--add-opens=" + module + "=ALL-UNNAMED");
          }
        }
      }
    }
    return out;
  }

  /**
   * Checks a run's output: the files hold as many lines as the summary says, and a spread sample of resources
   * parses with HAPI's strict parser and re-encodes to the same bytes. Returns the resource count.
   */
  private static long verify(Path outDir) throws Exception {
    JsonNode summary = new ObjectMapper().readTree(outDir.resolve("run-summary.json").toFile());
    if (!summary.get("balanced").asBoolean()) {
      throw new IllegalStateException("the run did not balance");
    }
    long expected = 0;
    for (JsonNode count : summary.get("resources_out")) {
      expected += count.asLong();
    }
    IParser parser = FhirContext.forR4Cached().newJsonParser().setParserErrorHandler(new StrictErrorHandler());
    long lines = 0;
    long step = Math.max(1, expected / 1000);
    try (DirectoryStream<Path> files = Files.newDirectoryStream(outDir.resolve("fhir"), "*.ndjson")) {
      for (Path f : files) {
        try (BufferedReader in = Files.newBufferedReader(f, StandardCharsets.UTF_8)) {
          String line;
          while ((line = in.readLine()) != null) {
            if (lines++ % step == 0) {
              String again = parser.encodeResourceToString(parser.parseResource(line));
              if (!again.equals(line)) {
                throw new IllegalStateException("a resource does not round-trip through HAPI unchanged");
              }
            }
          }
        }
      }
    }
    if (lines != expected) {
      throw new IllegalStateException("the files hold " + lines + " resources, the summary says " + expected);
    }
    return lines;
  }

  /**
   * Checks the baseline's output: the file holds as many lines as DuckDB said it wrote (the last line the process
   * printed). Returns that count.
   */
  private static long verifyBaseline(Path file, String output) throws java.io.IOException {
    long reported = Long.parseLong(output.strip().lines().reduce((a, b) -> b).orElse("-1").strip());
    long lines;
    try (Stream<String> all = Files.lines(file, StandardCharsets.UTF_8)) {
      lines = all.count();
    }
    if (lines != reported) {
      throw new IllegalStateException("the baseline's file holds " + lines + " resources, DuckDB said " + reported);
    }
    return lines;
  }

  private static void print(PrintWriter out, Map<String, Result> results) {
    Result base = results.get("duckdb-sql");
    Result withDb = results.get("duckdb-sql-db");
    out.println();
    out.printf("%-18s %-7s %12s %12s %13s %10s %8s %8s %9s %9s%n", "case", "runner", "rows", "rows/s", "resources/s",
        "peak RSS", "wall s", "CPU s", "vs (d)", "vs (db)");
    for (Result r : results.values()) {
      out.printf(Locale.ROOT, "%-18s %-7s %,12d %,12.0f %,13.0f %7d MB %8.2f %8.2f %9s %9s%n", r.name(), r.runner(),
          r.rows(), r.rowsPerSecond(), r.resourcesPerSecond(), r.peakRssBytes() >> 20, r.wallSeconds(),
          r.cpuSeconds(), ratio(r, base), ratio(r, withDb));
    }
    out.printf("(medians of %d run(s), the cases taking turns run by run; (d) = duckdb-sql, DuckDB alone writing the"
        + " same Patient JSON; (db) = duckdb-sql-db, DuckDB alone writing that JSON and the default job's database"
        + " tables of the same rows (raw_data, fhir_resources) in one transaction;"
        + " direct-duckdb = the default job as shipped, its DuckDB database included; synthea = the ten mappings of"
        + " config/pipelines/synthea.yaml over all rows of all its files, validation off, NDJSON only (synthea-duckdb:"
        + " with its database))%n",
        results.values().iterator().next().runs());
    for (Result r : results.values()) {
      String suffix = r.name().endsWith("-delta") ? "-delta" : r.name().endsWith("-validated") ? "-validated" : null;
      Result without = suffix == null ? null
          : results.get(r.name().substring(0, r.name().length() - suffix.length()));
      if (without != null) {
        out.printf(Locale.ROOT, "%s: %s of %s (the same run without %s)%n", r.name(), ratio(r, without),
            without.name(), suffix.equals("-delta") ? "the Delta table" : "validation");
      }
    }
    out.flush();
  }

  /** The case a Delta case ({@code direct-delta}) is the same run as, without the Delta table; null for others. */
  private static String ndjsonCase(String name) {
    return name.endsWith("-delta") ? name.substring(0, name.length() - "-delta".length()) : null;
  }

  /** How fast {@code r} ran against {@code base}, as text; "-" without a base. */
  private static String ratio(Result r, Result base) {
    return base == null ? "-" : String.format(Locale.ROOT, "%.2fx", r.rowsPerSecond() / base.rowsPerSecond());
  }

  private void writeJson(Map<String, Result> results, Map<String, List<Double>> queryMillis, long analyticsRss)
      throws java.io.IOException {
    Result base = results.get("duckdb-sql");
    Result withDb = results.get("duckdb-sql-db");
    List<Map<String, Object>> rowsOut = new ArrayList<>();
    for (Result r : results.values()) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("case", r.name());
      m.put("runner", r.runner());
      m.put("rows", r.rows());
      m.put("resources", r.resources());
      m.put("runs", r.runs());
      m.put("wall_s", r.wallSeconds());
      m.put("cpu_s", r.cpuSeconds());
      m.put("rows_per_s", Math.round(r.rowsPerSecond()));
      m.put("resources_per_s", Math.round(r.resourcesPerSecond()));
      m.put("peak_rss_bytes", r.peakRssBytes());
      m.put("ratio_to_duckdb", base == null ? null : r.rowsPerSecond() / base.rowsPerSecond());
      m.put("ratio_to_duckdb_db", withDb == null ? null : r.rowsPerSecond() / withDb.rowsPerSecond());
      Result ndjson = results.get(ndjsonCase(r.name()));
      if (ndjson != null) {
        m.put("ratio_to_ndjson", r.rowsPerSecond() / ndjson.rowsPerSecond());
      }
      rowsOut.add(m);
    }
    if (!queryMillis.isEmpty()) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("case", "analytics");
      m.put("runner", "duckdb");
      m.put("rows", rows);
      m.put("runs", runs);
      m.put("rows_per_s", null);
      m.put("resources_per_s", null);
      m.put("peak_rss_bytes", analyticsRss);
      m.put("ratio_to_duckdb", null);
      Map<String, Double> medians = new LinkedHashMap<>();
      queryMillis.forEach((name, values) -> medians.put(name,
          median(values.stream().mapToDouble(Double::doubleValue).toArray())));
      m.put("query_median_ms", medians);
      rowsOut.add(m);
    }
    new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(json.toFile(), rowsOut);
  }

  static double median(double[] values) {
    double[] v = values.clone();
    Arrays.sort(v);
    return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }
}
