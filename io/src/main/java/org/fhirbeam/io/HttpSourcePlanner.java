package org.fhirbeam.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedWriter;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.HttpSource;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.io.FileSourcePlanner.PlannedSource;

/**
 * Plans a REST API source: fetches every page before the run (following the next link, or numbering pages until
 * one has no items), with the configured headers, retrying 429, 5xx and failed connections with growing waits
 * (and the server's Retry-After), and writes the items as NDJSON into a temporary file that the run then reads
 * like any JSON file. A 4xx answer, or retries running out, stops the run before it starts (exit code 2) naming
 * the source and the status; response bodies are never quoted, as they hold data.
 */
public final class HttpSourcePlanner {
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Where fetched items are kept during the run. */
  static final Path FOLDER = Path.of(System.getProperty("java.io.tmpdir"), "fhirbeam-http");

  private final DuckDbSettings settings;
  private final Map<String, String> env;
  private final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10))
      .followRedirects(HttpClient.Redirect.NORMAL).build();

  public HttpSourcePlanner(DuckDbSettings settings, Map<String, String> env) {
    this.settings = settings;
    this.env = env;
  }

  public PlannedSource plan(SourceConfig source) {
    HttpSource http = source.http();
    Path file;
    long items = 0;
    try {
      Files.createDirectories(FOLDER);
      file = Files.createTempFile(FOLDER, source.name() + "-", ".ndjson");
      file.toFile().deleteOnExit();
      try (BufferedWriter out = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
        String url = http.url();
        Set<String> seen = new HashSet<>();
        for (int page = 1; url != null; page++) {
          if (!seen.add(url)) {
            throw new InputException("source " + source.name() + ": page " + page + " links back to " + url);
          }
          JsonNode body = fetch(source.name(), http, url);
          JsonNode list = http.items() == null ? body : at(body, http.items());
          if (list == null || !list.isArray()) {
            throw new InputException("source " + source.name() + ": the page " + url + " has no array at '"
                + (http.items() == null ? "(the page)" : http.items()) + "' (http.items)");
          }
          for (JsonNode item : list) {
            out.write(JSON.writeValueAsString(item));
            out.newLine();
            items++;
          }
          if (http.nextLink() != null) {
            JsonNode next = at(body, http.nextLink());
            url = next == null || next.isNull() || next.asText().isEmpty() ? null
                : URI.create(url).resolve(next.asText()).toString();
          } else if (http.pageParam() != null) {
            url = list.isEmpty() ? null : withParam(http.url(), http.pageParam(), page + 1);
          } else {
            url = null;
          }
        }
      }
    } catch (IOException e) {
      throw new InputException("source " + source.name() + ": cannot store the fetched pages: " + e.getMessage(), e);
    }
    if (items == 0) {
      return new PlannedSource(source, List.of(), List.of());
    }
    PlannedSource planned;
    try (FileSourcePlanner planner = new FileSourcePlanner(settings)) {
      planned = planner.plan(new SourceConfig(source.name(), file.toString(), null, SourceConfig.Format.JSON, false,
          source.location()));
    }
    List<ReadTask> tasks = new ArrayList<>();
    for (ReadTask t : planned.tasks()) {
      // Rejects name the API, and an item's position among all items fetched (line of the fetched NDJSON).
      tasks.add(t.withFile("http:" + http.url()));
    }
    return new PlannedSource(source, List.copyOf(tasks), planned.columns());
  }

  private JsonNode fetch(String source, HttpSource http, String url) {
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(60))
        .header("Accept", "application/json");
    for (Map.Entry<String, String> h : http.headersEnv().entrySet()) {
      String value = env.get(h.getValue());
      if (value == null) {
        throw new InputException("source " + source + ": the environment variable " + h.getValue()
            + " (http.headers_env." + h.getKey() + ") is not set");
      }
      request.header(h.getKey(), value);
    }
    String problem = null;
    for (int attempt = 0; attempt <= http.maxRetries(); attempt++) {
      long waitMillis = Math.min(10_000, 200L << attempt);
      try {
        HttpResponse<byte[]> r = client.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
        int status = r.statusCode();
        if (status == 200) {
          try {
            return JSON.readTree(r.body());
          } catch (IOException e) {
            throw new InputException("source " + source + ": the page " + url + " is not JSON");
          }
        }
        problem = "HTTP " + status;
        if (status != 429 && status < 500) {
          throw new InputException("source " + source + ": " + url + " answered HTTP " + status
              + (status == 401 || status == 403 ? " (check the credentials in http.headers_env)" : ""));
        }
        waitMillis = r.headers().firstValue("Retry-After").map(HttpSourcePlanner::seconds).map(s -> s * 1000)
            .orElse(waitMillis);
      } catch (IOException e) {
        problem = "cannot reach the server (" + e.getClass().getSimpleName() + ")";
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while fetching " + url, e);
      }
      if (attempt < http.maxRetries()) {
        try {
          Thread.sleep(waitMillis);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted while fetching " + url, e);
        }
      }
    }
    throw new InputException("source " + source + ": " + url + ": " + problem + " after " + (http.maxRetries() + 1)
        + " attempt(s)");
  }

  private static Long seconds(String retryAfter) {
    try {
      return Math.min(30L, Long.parseLong(retryAfter.trim()));
    } catch (NumberFormatException e) {
      return 1L;
    }
  }

  /** The node at a dotted path; a segment {@code name[key=value]} picks the first array element with that key. */
  static JsonNode at(JsonNode node, String path) {
    JsonNode n = node;
    for (String segment : path.split("\\.")) {
      if (n == null) {
        return null;
      }
      int bracket = segment.indexOf('[');
      if (bracket < 0) {
        n = n.get(segment);
        continue;
      }
      String[] kv = segment.substring(bracket + 1, segment.length() - 1).split("=", 2);
      JsonNode array = n.get(segment.substring(0, bracket));
      n = null;
      if (array != null && array.isArray()) {
        for (JsonNode e : array) {
          if (e.path(kv[0]).asText().equals(kv[1])) {
            n = e;
            break;
          }
        }
      }
    }
    return n;
  }

  private static String withParam(String url, String param, int value) {
    return url + (url.contains("?") ? "&" : "?") + param + "=" + value;
  }
}
