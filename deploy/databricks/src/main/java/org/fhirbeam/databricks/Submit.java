package org.fhirbeam.databricks;

import com.databricks.sdk.WorkspaceClient;
import com.databricks.sdk.core.DatabricksConfig;
import com.databricks.sdk.core.DatabricksError;
import com.databricks.sdk.core.DatabricksException;
import com.databricks.sdk.core.error.platform.NotFound;
import com.databricks.sdk.core.utils.SerDeUtils;
import com.databricks.sdk.service.files.UploadRequest;
import com.databricks.sdk.service.jobs.JobRunAs;
import com.databricks.sdk.service.jobs.Run;
import com.databricks.sdk.service.jobs.RunLifeCycleState;
import com.databricks.sdk.service.jobs.RunResultState;
import com.databricks.sdk.service.jobs.RunTask;
import com.databricks.sdk.service.jobs.SubmitRun;
import com.databricks.sdk.service.jobs.SubmitTask;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.fhirbeam.config.ConfigLoader;
import org.fhirbeam.config.Durations;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.MappingConfig;
import org.fhirbeam.config.PipelineConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code fhirbeam submit}: a one-time run of the bundle's batch job on Databricks, without deploying the bundle. It
 * uploads the application jar and the files the bundle syncs (the configuration, mappings, packages and sample data)
 * to the bundle's Volume through the Files API, submits the batch job's task as the bundle defines it for the target
 * (Jobs API 2.2 {@code runs/submit}, with an idempotency token), prints the run's page and, with {@code --wait},
 * follows it to its end.
 *
 * <p>Exit codes: 0 submitted (with {@code --wait}: the run succeeded); 1 the run failed, or the workspace failed
 * the request; 2 bad input (options, bundle, configuration, credentials) or authentication refused; 3 the run was
 * still going at {@code --timeout} (it goes on).
 */
@Command(name = "submit", mixinStandardHelpOptions = true, sortOptions = false,
    description = {"Runs the bundle's batch job once on Databricks: uploads the application jar and the configuration"
        + " to the bundle's Volume, submits the run, prints its page.",
        "Credentials: DATABRICKS_HOST with DATABRICKS_TOKEN (a personal access token) or DATABRICKS_CLIENT_ID and"
            + " DATABRICKS_CLIENT_SECRET (OAuth for a service principal). Bundle variables without a value:"
            + " --var NAME=VALUE or BUNDLE_VAR_<NAME>."},
    footer = {"", "Exit codes: 0 submitted (with --wait: succeeded), 1 the run failed or the workspace refused,"
        + " 2 bad input or authentication refused, 3 still running at --timeout."})
public final class Submit implements Callable<Integer> {
  /** The bundle's batch job, which {@code submit} runs. */
  static final String BATCH_JOB = "fhirbeam_batch";
  /** The keys of a bundle's job that {@code submit} understands (it sends the first three). */
  private static final java.util.Set<String> JOB_KEYS = java.util.Set.of("name", "tasks", "timeout_seconds",
      "max_concurrent_runs", "continuous");
  private static final DateTimeFormatter CLOCK = DateTimeFormatter.ofPattern("HH:mm:ss");

  @Option(names = "--target", paramLabel = "NAME", description = "The bundle's target (default: the bundle's default"
      + " target, dev).")
  String target;

  @Option(names = "--config", paramLabel = "FILE", description = "The pipeline configuration the job runs (default:"
      + " config/pipelines/default.yaml); it and its mappings must be among the files the bundle syncs.")
  Path config;

  @Option(names = "--var", paramLabel = "NAME=VALUE", description = "A bundle variable's value, as"
      + " `databricks bundle --var` takes it.")
  Map<String, String> vars = new LinkedHashMap<>();

  @Option(names = "--wait", description = "Follow the run to its end: exit 0 when it succeeds, 1 when it fails.")
  boolean await;

  @Option(names = "--timeout", paramLabel = "DURATION", description = "With --wait: stop waiting after this long"
      + " (e.g. 90s, 30m, 2h; default: no limit); the run goes on, exit code 3.")
  String timeout;

  @Option(names = "--poll-interval", paramLabel = "DURATION", defaultValue = "10s", description = "With --wait: how"
      + " often the run's state is read (default: ${DEFAULT-VALUE}).")
  String pollInterval;

  @Option(names = "--dry-run", description = "Print the requests it would send, and send none.")
  boolean dryRun;

  @Option(names = "--idempotency-token", paramLabel = "TOKEN", description = "The run's idempotency token (default:"
      + " a new one): a submit repeated with the same token starts no second run.")
  String idempotencyToken;

  @Option(names = "--jar", paramLabel = "FILE", description = "The application jar (default:"
      + " deploy/cluster/target/fhirbeam-cluster.jar, which the launcher builds when it is missing or stale).")
  Path jar;

  @Option(names = "--verbose", description = "Print the stack trace of an unexpected error.")
  boolean verbose;

  @Option(names = "--bundle", paramLabel = "FILE", description = "The bundle file (default:"
      + " deploy/databricks/databricks.yml).")
  Path bundleFile;

  private Map<String, String> env = Map.of();
  private PrintStream out = System.out;

  public static void main(String[] args) {
    System.exit(run(System.getenv(), System.out, System.err, args));
  }

  /** Runs the command with {@code env} as its environment; returns the exit code. */
  public static int run(Map<String, String> env, PrintStream out, PrintStream err, String... args) {
    Submit submit = new Submit();
    submit.env = env;
    submit.out = out;
    CommandLine cli = new CommandLine(submit);
    cli.setOut(new java.io.PrintWriter(out, true));
    cli.setErr(new java.io.PrintWriter(err, true));
    cli.setExecutionExceptionHandler((e, line, parsed) -> {
      if (e instanceof InputException || e instanceof Refused) {
        err.println("error: " + e.getMessage());
        return e instanceof Refused r ? r.exitCode : 2;
      }
      Throwable root = e;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      err.println("error: " + root.getClass().getSimpleName() + ": " + firstLine(root.getMessage()));
      if (submit.verbose) {
        e.printStackTrace(err);
      } else {
        err.println("(run again with --verbose for details)");
      }
      return 1;
    });
    return cli.execute(args);
  }

  @Override
  public Integer call() throws Exception {
    Path home = Path.of(env.getOrDefault("FHIRBEAM_HOME", ".")).toAbsolutePath().normalize();
    Bundle bundle = Bundle.read(bundleFile != null ? bundleFile : home.resolve("deploy/databricks/databricks.yml"));
    String targetName = target != null ? target : bundle.defaultTarget();
    Path configFile = (config != null ? config : home.resolve("config/pipelines/default.yaml")).toAbsolutePath()
        .normalize();
    Path jarFile = (jar != null ? jar : home.resolve("deploy/cluster/target/fhirbeam-cluster.jar")).toAbsolutePath();
    if (!Files.isRegularFile(jarFile)) {
      throw new InputException("no application jar " + jarFile + " (`./fhirbeam submit` builds it; or give --jar)");
    }
    Duration poll = Durations.parse("--poll-interval", pollInterval);
    Duration waitAtMost = timeout == null ? null : Durations.parse("--timeout", timeout);
    String token = idempotencyToken != null ? idempotencyToken : UUID.randomUUID().toString();
    if (!token.matches("[A-Za-z0-9._-]{1,64}") || token.matches("\\.+")) {
      // It names the run's folder on the Volume too.
      throw new InputException("--idempotency-token " + token + ": 1 to 64 letters, digits, '.', '_' and '-'");
    }

    List<Upload> uploads = new ArrayList<>();
    String relativeConfig = checkConfig(bundle, configFile, home);
    String volume = String.valueOf(bundle.target(targetName, vars, env).variable("volume"));
    String remoteHome = volume + "/submit/" + targetName + "/" + token;
    for (Path dir : bundle.syncPaths()) {
      if (!Files.isDirectory(dir)) {
        throw new InputException(bundle.file() + ": sync.paths names " + dir + ", which is not a folder");
      }
      try (Stream<Path> files = Files.walk(dir)) {
        files.filter(Files::isRegularFile).sorted().forEach(f -> uploads.add(new Upload(f,
            remoteHome + "/" + bundle.syncRoot().relativize(f).toString().replace('\\', '/'))));
      }
    }
    String remoteJar = volume + "/jars/fhirbeam-cluster-" + sha256(jarFile).substring(0, 16) + ".jar";
    Upload jarUpload = new Upload(jarFile, remoteJar);

    Map<String, String> runVars = new LinkedHashMap<>(vars);
    runVars.put("home", remoteHome);
    runVars.put("config", relativeConfig);
    Bundle.Target resolved = bundle.target(targetName, runVars, env);
    SubmitRun request = submitRun(resolved, BATCH_JOB, remoteJar, token);

    Credentials credentials = Credentials.from(env, dryRun);
    out.println("fhirbeam submit: target " + targetName + " of " + bundle.file() + ", " + credentials.host()
        + " (" + credentials.describe() + ")");
    if (dryRun) {
      printDryRun(credentials, jarUpload, uploads, request);
      return 0;
    }
    return submit(credentials, jarUpload, remoteHome, uploads, request, poll, waitAtMost);
  }

  /**
   * Loads the configuration as the job will (its mappings compiled, references resolved), and returns its path
   * relative to home on the cluster; it and each mapping must be among the files the bundle syncs.
   */
  private static String checkConfig(Bundle bundle, Path configFile, Path home) throws IOException {
    if (!Files.isRegularFile(configFile)) {
      throw new InputException("no configuration file " + configFile);
    }
    PipelineConfig loaded = new ConfigLoader(variablesOnTheCluster(bundle, home)).load(configFile, Map.of());
    List<Path> files = new ArrayList<>();
    files.add(configFile);
    for (MappingConfig m : loaded.mappings()) {
      files.add(Path.of(m.file()).toAbsolutePath().normalize());
    }
    for (Path f : files) {
      if (bundle.syncPaths().stream().noneMatch(f::startsWith)) {
        throw new InputException(f + " is not among the files the bundle syncs and `submit` uploads ("
            + String.join(", ", bundle.syncPaths().stream().map(p -> bundle.syncRoot().relativize(p).toString())
                .toList()) + "): put it there, or add its folder to sync.paths in " + bundle.file());
      }
    }
    return bundle.syncRoot().relativize(configFile).toString().replace('\\', '/');
  }

  /**
   * The variables the configuration is checked with: the values of environment variables are the cluster's, which are
   * not known here (a secret scope's, say), so each variable the synced YAML files name stands for itself; only
   * FHIRBEAM_HOME is this installation, whose files are those uploaded.
   */
  private static Map<String, String> variablesOnTheCluster(Bundle bundle, Path home) throws IOException {
    java.util.regex.Pattern reference = java.util.regex.Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)");
    Map<String, String> variables = new LinkedHashMap<>();
    for (Path dir : bundle.syncPaths()) {
      try (Stream<Path> files = Files.walk(dir)) {
        for (Path f : files.filter(f -> f.toString().endsWith(".yaml") || f.toString().endsWith(".yml")).toList()) {
          java.util.regex.Matcher m = reference.matcher(Files.readString(f));
          while (m.find()) {
            variables.put(m.group(1), "<" + m.group(1) + " on the cluster>");
          }
        }
      }
    }
    variables.put("FHIRBEAM_HOME", home.toString());
    return variables;
  }

  /**
   * A one-time run of a job: its tasks as the bundle defines them for the target, each library jar given as a local
   * path (which a bundle deployment uploads) replaced by the uploaded jar.
   */
  static SubmitRun submitRun(Bundle.Target target, String jobKey, String remoteJar, String token) {
    Map<String, Object> job = target.job(jobKey);
    for (String key : job.keySet()) {
      if (!JOB_KEYS.contains(key)) {
        throw new InputException(target.name() + ": job " + jobKey + " sets " + key + ", which `submit` does not send:"
            + " a one-time run takes the job's name, tasks and timeout_seconds (max_concurrent_runs and continuous"
            + " apply to the deployed job only)");
      }
    }
    if (!(job.get("tasks") instanceof List<?>)) {
      throw new InputException(target.name() + ": job " + jobKey + " has no tasks");
    }
    ObjectMapper strict = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
    List<SubmitTask> tasks = new ArrayList<>();
    for (Object t : (List<?>) job.get("tasks")) {
      @SuppressWarnings("unchecked")
      Map<String, Object> task = new LinkedHashMap<>((Map<String, Object>) t);
      List<Object> libraries = new ArrayList<>();
      for (Object l : (List<?>) task.getOrDefault("libraries", List.of())) {
        if (l instanceof Map<?, ?> lib && lib.get("jar") instanceof String path && !path.startsWith("/")
            && !path.contains(":")) {
          libraries.add(Map.of("jar", remoteJar));
        } else {
          libraries.add(l);
        }
      }
      task.put("libraries", libraries);
      try {
        tasks.add(strict.convertValue(task, SubmitTask.class));
      } catch (IllegalArgumentException e) {
        throw new InputException(target.name() + ": task " + task.get("task_key") + " of job " + jobKey
            + " is not a task the Jobs API takes: " + e.getMessage().lines().findFirst().orElse(""));
      }
    }
    SubmitRun run = new SubmitRun().setRunName((String) job.get("name")).setTasks(tasks).setIdempotencyToken(token);
    Object timeout = job.get("timeout_seconds");
    if (timeout != null) {
      if (!String.valueOf(timeout).matches("\\d+")) {
        throw new InputException(target.name() + ": job " + jobKey + ": timeout_seconds '" + timeout + "' is not a"
            + " number of seconds");
      }
      long seconds = Long.parseLong(String.valueOf(timeout));
      if (seconds > 0) {
        run.setTimeoutSeconds(seconds);
      }
    }
    Map<String, Object> runAs = target.runAs();
    if (!runAs.isEmpty()) {
      try {
        run.setRunAs(strict.convertValue(runAs, JobRunAs.class));
      } catch (IllegalArgumentException e) {
        throw new InputException(target.name() + ": run_as is not what the Jobs API takes: "
            + firstLine(e.getMessage()));
      }
    }
    return run;
  }

  private void printDryRun(Credentials credentials, Upload jarUpload, List<Upload> uploads, SubmitRun request)
      throws JsonProcessingException {
    out.println("dry run: these requests would be sent (Authorization: " + credentials.redactedHeader() + ")");
    List<Upload> all = new ArrayList<>();
    all.add(jarUpload);
    all.addAll(uploads);
    for (Upload u : all) {
      out.println("PUT " + credentials.host() + filesPath(u.remote()) + "?overwrite=true  (" + size(u.local())
          + " bytes from " + u.local() + ")");
    }
    out.println("POST " + credentials.host() + "/api/2.2/jobs/runs/submit");
    out.println(SerDeUtils.createMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(request));
    if (await) {
      out.println("GET " + credentials.host() + "/api/2.2/jobs/runs/get?run_id=<the run's id>  (every "
          + pollInterval + " until the run ends)");
    }
  }

  private int submit(Credentials credentials, Upload jarUpload, String remoteHome, List<Upload> uploads,
      SubmitRun request, Duration poll, Duration waitAtMost) throws InterruptedException {
    WorkspaceClient workspace;
    try {
      DatabricksConfig config = credentials.config();
      workspace = new WorkspaceClient(config);
      config.authenticate();
    } catch (DatabricksException e) {
      throw new Refused(2, "authentication failed for " + credentials.host() + " (" + credentials.describe() + "): "
          + firstLine(e.getMessage()));
    }
    try {
      upload(workspace, jarUpload, true);
      long bytes = 0;
      for (Upload u : uploads) {
        upload(workspace, u, false);
        bytes += size(u);
      }
      out.println("uploaded " + uploads.size() + " files (" + bytes / 1024 + " KB) to " + remoteHome);
      long runId = workspace.jobs().submit(request).getResponse().getRunId();
      Run run = workspace.jobs().getRun(runId);
      out.println("submitted run " + runId + " (idempotency token " + request.getIdempotencyToken() + "): "
          + run.getRunPageUrl());
      if (!await) {
        return 0;
      }
      return follow(workspace, run, poll, waitAtMost);
    } catch (DatabricksError e) {
      int status = e.getStatusCode();
      String what = status == 401 ? "authentication refused by the workspace (" + credentials.describe() + ")"
          : status == 403 ? "permission denied by the workspace" : "the workspace refused the request";
      String message = firstLine(e.getMessage());
      throw new Refused(status == 400 || status == 401 || status == 403 || status == 404 ? 2 : 1, what + ": HTTP "
          + status + (e.getErrorCode() != null ? " " + e.getErrorCode() : "") + (message.isBlank() ? "" : ": "
          + message));
    } catch (DatabricksException e) {
      throw new Refused(1, "the workspace failed the request: " + firstLine(e.getMessage())
          + (e.getCause() != null ? " (" + firstLine(e.getCause().getMessage()) + ")" : ""));
    }
  }

  /** Follows the run until it ends, printing each change of its state; the exit code. */
  private int follow(WorkspaceClient workspace, Run submitted, Duration poll, Duration waitAtMost)
      throws InterruptedException {
    long start = System.nanoTime();
    long runId = submitted.getRunId();
    String last = null;
    Run run = submitted;
    while (true) {
      String state = describe(run);
      if (!state.equals(last)) {
        out.println(LocalTime.now().format(CLOCK) + "  run " + runId + ": " + state);
        last = state;
      }
      RunLifeCycleState life = run.getState().getLifeCycleState();
      if (life == RunLifeCycleState.TERMINATED || life == RunLifeCycleState.SKIPPED
          || life == RunLifeCycleState.INTERNAL_ERROR) {
        break;
      }
      Duration waited = Duration.ofNanos(System.nanoTime() - start);
      if (waitAtMost != null && waited.compareTo(waitAtMost) >= 0) {
        out.println("run " + runId + " is still " + life + " after " + timeout + " (--timeout); it goes on: "
            + submitted.getRunPageUrl());
        return 3;
      }
      Thread.sleep(waitAtMost == null ? poll.toMillis() : Math.min(poll.toMillis(),
          waitAtMost.minus(waited).toMillis() + 1));
      run = workspace.jobs().getRun(runId);
    }
    if (run.getState().getResultState() == RunResultState.SUCCESS) {
      out.println("run " + runId + " succeeded: " + submitted.getRunPageUrl());
      return 0;
    }
    out.println("run " + runId + " " + (run.getState().getResultState() != null ? run.getState().getResultState()
        : run.getState().getLifeCycleState()) + ": " + Objects.toString(run.getState().getStateMessage(), ""));
    for (RunTask task : run.getTasks() == null ? List.<RunTask>of() : run.getTasks()) {
      if (task.getState() != null && task.getState().getResultState() != RunResultState.SUCCESS) {
        String error;
        try {
          error = workspace.jobs().getRunOutput(task.getRunId()).getError();
        } catch (DatabricksException e) {
          error = "(its output could not be read: " + firstLine(e.getMessage()) + ")";
        }
        out.println("  task " + task.getTaskKey() + ": " + (error == null ? "(no error message)" : error));
      }
    }
    return 1;
  }

  private static String describe(Run run) {
    var state = run.getState();
    String s = String.valueOf(state.getLifeCycleState());
    if (state.getResultState() != null) {
      s += " " + state.getResultState();
    }
    if (state.getStateMessage() != null && !state.getStateMessage().isBlank()) {
      s += " (" + state.getStateMessage() + ")";
    }
    return s;
  }

  /** Uploads a file; the jar only when the Volume does not hold it yet (its name carries its content's hash). */
  private void upload(WorkspaceClient workspace, Upload u, boolean skipIfPresent) {
    if (skipIfPresent) {
      try {
        Long length = workspace.files().getMetadata(u.remote()).getContentLength();
        if (length != null && length == size(u)) {
          out.println("application jar already on the Volume: " + u.remote());
          return;
        }
      } catch (NotFound e) {
        // not there yet
      }
    }
    long started = System.nanoTime();
    try (InputStream in = new ReplayableFileStream(u.local())) {
      workspace.files().upload(new UploadRequest().setFilePath(u.remote()).setContents(in).setOverwrite(true));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (skipIfPresent) {
      double seconds = (System.nanoTime() - started) / 1e9;
      out.printf(Locale.ROOT, "uploaded the application jar (%d MB in %.1f s): %s%n", size(u) >> 20, seconds,
          u.remote());
    }
  }

  private static String filesPath(String remote) {
    return "/api/2.0/fs/files" + remote;
  }

  private static long size(Upload u) {
    return size(u.local());
  }

  private static long size(Path p) {
    try {
      return Files.size(p);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest digest = MessageDigest.getInstance("SHA-256");
      byte[] buffer = new byte[1 << 16];
      for (int n; (n = in.read(buffer)) > 0; ) {
        digest.update(buffer, 0, n);
      }
      return HexFormat.of().formatHex(digest.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String firstLine(String s) {
    return s == null ? "" : s.lines().findFirst().orElse("");
  }

  /** A local file and where on the workspace it goes. */
  record Upload(Path local, String remote) {}

  /** A failure whose message is for the user, with its exit code. */
  static final class Refused extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final int exitCode;

    Refused(int exitCode, String message) {
      super(message);
      this.exitCode = exitCode;
    }
  }
}
