package org.fhirbeam.databricks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Deque;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A loopback HTTP server that answers like a Databricks workspace's Files, Jobs and OAuth endpoints, with the shapes
 * of Databricks' published API, and records every request. It stands in for a workspace because none is reachable
 * from here; it is not Databricks, and it checks only what these tests assert: the method, path, authentication and
 * body of each request. Uploaded files are written under a local folder as their Volume path; runs follow a script
 * of states.
 */
final class RecordingWorkspace implements AutoCloseable {
  /** One request as it arrived. */
  record Recorded(long nanos, String method, String path, String query, String authorization, byte[] body) {
    JsonNode json() {
      try {
        return new ObjectMapper().readTree(body);
      } catch (IOException e) {
        throw new IllegalStateException(e);
      }
    }

    String sha256() {
      return RecordingWorkspace.sha256(body);
    }
  }

  /** A run's state as {@code runs/get} reports it. */
  record State(String lifeCycle, String result, String message) {}

  /** An answer given once instead of the usual one, to the next request with this method and path prefix. */
  private record Scripted(String method, String pathPrefix, int status, String retryAfter, String body) {}

  static final String PAT = "dapi-test-token-0123456789";
  static final String CLIENT_ID = "7f1c2a3b-0000-4000-8000-00000000c11e";
  static final String CLIENT_SECRET = "dose-test-secret-abcdef";
  static final String OAUTH_TOKEN = "oauth-access-token-42";

  private final HttpServer server;
  private final List<Recorded> requests = new ArrayList<>();
  private final Deque<Scripted> overrides = new ArrayDeque<>();
  private final Path volumes;
  private final Map<String, Long> runsByToken = new HashMap<>();
  private final Map<Long, Integer> polls = new HashMap<>();
  private List<State> script = List.of(new State("TERMINATED", "SUCCESS", ""));
  private String taskError;
  private long nextRunId = 1001;

  /** A workspace whose uploaded files go to {@code volumes}/&lt;their path&gt;. */
  RecordingWorkspace(Path volumes) throws IOException {
    this.volumes = volumes;
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.createContext("/", this::handle);
    server.start();
  }

  String host() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  /** The states each submitted run goes through, one per {@code runs/get}; it stays in the last. */
  synchronized void script(List<State> states, String taskError) {
    this.script = List.copyOf(states);
    this.taskError = taskError;
  }

  /** The next request with {@code method} on a path starting with {@code pathPrefix} gets this answer instead. */
  synchronized void failNext(String method, String pathPrefix, int status, String retryAfter, String body) {
    overrides.add(new Scripted(method, pathPrefix, status, retryAfter, body));
  }

  synchronized List<Recorded> requests() {
    return List.copyOf(requests);
  }

  /** The requests with {@code method} whose path starts with {@code prefix}. */
  synchronized List<Recorded> requests(String method, String prefix) {
    return requests.stream().filter(r -> r.method().equals(method) && r.path().startsWith(prefix)).toList();
  }

  /** The number of distinct runs started. */
  synchronized int runsStarted() {
    return runsByToken.size();
  }

  private void handle(HttpExchange exchange) throws IOException {
    try (exchange; InputStream in = exchange.getRequestBody()) {
      byte[] body = in.readAllBytes();
      String method = exchange.getRequestMethod();
      String path = exchange.getRequestURI().getPath();
      String query = exchange.getRequestURI().getRawQuery();
      Recorded r = new Recorded(System.nanoTime(), method, path, query,
          exchange.getRequestHeaders().getFirst("Authorization"), body);
      Answer answer;
      synchronized (this) {
        requests.add(r);
        answer = answer(r);
      }
      if (answer.retryAfter != null) {
        exchange.getResponseHeaders().add("Retry-After", answer.retryAfter);
      }
      byte[] out = answer.body == null ? new byte[0] : answer.body.getBytes(StandardCharsets.UTF_8);
      if (answer.body != null) {
        exchange.getResponseHeaders().add("Content-Type", "application/json");
      }
      if (method.equals("HEAD") && answer.length != null) {
        exchange.getResponseHeaders().add("Content-Length", String.valueOf(answer.length));
        exchange.sendResponseHeaders(answer.status, -1);
        return;
      }
      exchange.sendResponseHeaders(answer.status, out.length == 0 ? -1 : out.length);
      exchange.getResponseBody().write(out);
    }
  }

  private record Answer(int status, String retryAfter, String body, Long length) {
    static Answer json(int status, String body) {
      return new Answer(status, null, body, null);
    }
  }

  private Answer answer(Recorded r) {
    for (Scripted o : overrides) {
      if (o.method.equals(r.method()) && r.path().startsWith(o.pathPrefix)) {
        overrides.remove(o);
        return new Answer(o.status, o.retryAfter, o.body, null);
      }
    }
    String base = host();
    switch (r.path()) {
      case "/.well-known/databricks-config":
        return Answer.json(200, "{\"workspace_id\":\"1234567890\",\"oidc_endpoint\":\"" + base + "/oidc\"}");
      case "/oidc/.well-known/oauth-authorization-server":
        return Answer.json(200, "{\"authorization_endpoint\":\"" + base + "/oidc/v1/authorize\",\"token_endpoint\":\""
            + base + "/oidc/v1/token\"}");
      case "/oidc/v1/token":
        return token(r);
      default:
        break;
    }
    if (!("Bearer " + PAT).equals(r.authorization()) && !("Bearer " + OAUTH_TOKEN).equals(r.authorization())) {
      return Answer.json(401, "{\"error_code\":\"UNAUTHENTICATED\",\"message\":\"Invalid access token.\"}");
    }
    if (r.path().startsWith("/api/2.0/fs/files/Volumes/")) {
      Path file = volumes.resolve(r.path().substring("/api/2.0/fs/files/".length()));
      if (r.method().equals("HEAD")) {
        return Files.isRegularFile(file) ? new Answer(200, null, null, size(file)) : new Answer(404, null, null, null);
      }
      if (r.method().equals("PUT")) {
        write(file, r.body());
        return new Answer(204, null, null, null);
      }
    }
    if (r.method().equals("POST") && r.path().equals("/api/2.2/jobs/runs/submit")) {
      String token = r.json().path("idempotency_token").asText();
      long id = runsByToken.computeIfAbsent(token, t -> nextRunId++);
      return Answer.json(200, "{\"run_id\":" + id + "}");
    }
    if (r.method().equals("GET") && r.path().equals("/api/2.2/jobs/runs/get")) {
      long id = Long.parseLong(query(r.query()).get("run_id"));
      int poll = polls.merge(id, 1, Integer::sum) - 1;
      State s = script.get(Math.min(poll, script.size() - 1));
      String result = s.result().isEmpty() ? "" : ",\"result_state\":\"" + s.result() + "\"";
      String task = "{\"run_id\":" + (id + 50000) + ",\"task_key\":\"map_to_fhir\",\"state\":{\"life_cycle_state\":\""
          + s.lifeCycle() + "\"" + result + "}}";
      return Answer.json(200, "{\"run_id\":" + id + ",\"run_name\":\"fhirbeam batch\",\"run_page_url\":\"" + base
          + "/?o=1234567890#job/0/run/" + id + "\",\"state\":{\"life_cycle_state\":\"" + s.lifeCycle() + "\""
          + result + ",\"state_message\":\"" + s.message() + "\"},\"tasks\":[" + task + "]}");
    }
    if (r.method().equals("GET") && r.path().equals("/api/2.2/jobs/runs/get-output")) {
      return Answer.json(200, "{\"error\":" + (taskError == null ? "null" : new ObjectMapper().valueToTree(taskError))
          + ",\"metadata\":{}}");
    }
    return Answer.json(404, "{\"error_code\":\"ENDPOINT_NOT_FOUND\",\"message\":\"No API found for '" + r.method()
        + " " + r.path() + "'\"}");
  }

  /** OAuth's client-credentials grant, with the client's id and secret as HTTP Basic authentication. */
  private Answer token(Recorded r) {
    Map<String, String> form = query(new String(r.body(), StandardCharsets.UTF_8));
    String basic = "Basic " + Base64.getEncoder().encodeToString((CLIENT_ID + ":" + CLIENT_SECRET)
        .getBytes(StandardCharsets.UTF_8));
    boolean client = basic.equals(r.authorization()) || (CLIENT_ID.equals(form.get("client_id"))
        && CLIENT_SECRET.equals(form.get("client_secret")));
    if (!"client_credentials".equals(form.get("grant_type")) || !client) {
      return Answer.json(401, "{\"error\":\"invalid_client\",\"error_description\":\"Client authentication"
          + " failed\"}");
    }
    return Answer.json(200, "{\"access_token\":\"" + OAUTH_TOKEN + "\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
        + "\"scope\":\"all-apis\"}");
  }

  private static long size(Path file) {
    try {
      return Files.size(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void write(Path file, byte[] body) {
    try {
      Files.createDirectories(file.getParent());
      Files.write(file, body);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Map<String, String> query(String query) {
    Map<String, String> out = new LinkedHashMap<>();
    if (query == null || query.isEmpty()) {
      return out;
    }
    for (String pair : query.split("&")) {
      int eq = pair.indexOf('=');
      out.put(URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8),
          eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
    }
    return out;
  }

  static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
