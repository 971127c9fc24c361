package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A REST API as a source, against a real HTTP server on loopback that serves recorded pages: pagination by next
 * link, a 503 that is retried, and a 404 that stops the run. The resources equal those of the same rows in CSV.
 */
@Tag("servers")
class HttpSourceTest {
  @TempDir
  Path tmp;

  HttpServer server;
  final Map<String, String> pages = new ConcurrentHashMap<>();
  final AtomicInteger unavailable = new AtomicInteger(1);
  final AtomicInteger requests = new AtomicInteger();

  @BeforeEach
  void serve() throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/", exchange -> {
      requests.incrementAndGet();
      String key = exchange.getRequestURI().toString();
      String body = pages.get(key);
      // The API wants a key; the source sends the value of an environment variable (HOME stands in for a secret).
      boolean authorized = System.getenv("HOME").equals(exchange.getRequestHeaders().getFirst("X-Api-Key"));
      int status = !authorized ? 401 : body == null ? 404 : 200;
      if (status == 200 && key.contains("page=2") && unavailable.getAndDecrement() > 0) {
        status = 503; // the second page fails once: the source retries it
      }
      byte[] bytes = (status == 200 ? body : "{\"error\":\"x\"}").getBytes(StandardCharsets.UTF_8);
      exchange.getResponseHeaders().add("Content-Type", "application/json");
      exchange.sendResponseHeaders(status, bytes.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(bytes);
      }
    });
    server.start();
    String base = "http://127.0.0.1:" + server.getAddress().getPort();
    pages.put("/patients", "{\"data\":[{\"patient_id\":\"p1\",\"first_name\":\"Maria\",\"last_name\":\"Garcia\","
        + "\"birth_date\":\"1984-03-12\",\"gender\":\"F\"},{\"patient_id\":\"p2\",\"first_name\":\"John\","
        + "\"last_name\":\"Smith\",\"birth_date\":\"bad\",\"gender\":\"M\"}],\"links\":{\"next\":\"/patients?page=2\"}}");
    pages.put("/patients?page=2", "{\"data\":[{\"patient_id\":\"p3\",\"first_name\":\"Cy\",\"last_name\":\"Begay\","
        + "\"birth_date\":\"2001-07-30\",\"gender\":\"other\"}],\"links\":{\"next\":null}}");
  }

  @AfterEach
  void stop() {
    server.stop(0);
  }

  String keyVariable = "HOME";

  Path config(String path) throws IOException {
    return Files.writeString(tmp.resolve("p.yaml"), "sources:\n  patients:\n    http:\n      url: http://127.0.0.1:"
        + server.getAddress().getPort() + path + "\n      items: data\n      next_link: links.next\n"
        + "      headers_env: {X-Api-Key: " + keyVariable + "}\n"
        + "mappings: [" + DefaultJobTest.HOME.resolve("config/mappings/patient.yaml") + "]\n");
  }

  @Test
  void pagesAreFetchedRetriedAndMappedLikeTheSameRowsInCsv() throws IOException {
    Path out = tmp.resolve("out");
    Cli r = Cli.run("run", "--config", config("/patients").toString(), "--output", out.toString(), "--set",
        "duckdb.database=" + tmp.resolve("h.db"));
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), containsString("balance: rows in 3 = resources 2 + rejected 1: OK"));
    assertThat(requests.get(), equalTo(3)); // page 1, page 2 (503), page 2 again

    Path csv = Files.writeString(tmp.resolve("p.csv"), "patient_id,first_name,last_name,birth_date,gender\n"
        + "p1,Maria,Garcia,1984-03-12,F\np2,John,Smith,bad,M\np3,Cy,Begay,2001-07-30,other\n");
    Cli c = Cli.run("run", "--output", tmp.resolve("csv").toString(), "--set", "sources.patients.path=" + csv,
        "--set", "duckdb.database=" + tmp.resolve("c.db"));
    assertThat(c.err(), c.code(), equalTo(0));
    assertThat(Files.readString(out.resolve("fhir/Patient-00000-of-00001.ndjson")),
        equalTo(Files.readString(tmp.resolve("csv/fhir/Patient-00000-of-00001.ndjson"))));
    List<String> rejects;
    try (var files = Files.list(out.resolve("rejects"))) {
      rejects = Files.readAllLines(files.findFirst().orElseThrow());
    }
    assertThat(rejects.get(0), containsString("\"file\":\"http:http://127.0.0.1:" + server.getAddress().getPort()
        + "/patients\",\"line\":2,"));

    // The Spark runner reads the same pages.
    Cli spark = Cli.run("run", "--runner", "spark", "--config", config("/patients").toString(), "--output",
        tmp.resolve("spark").toString(), "--set", "duckdb.database=" + tmp.resolve("s.db"));
    assertThat(spark.err(), spark.code(), equalTo(0));
    assertThat(Files.readString(tmp.resolve("spark/fhir/Patient-00000-of-00001.ndjson")),
        equalTo(Files.readString(tmp.resolve("csv/fhir/Patient-00000-of-00001.ndjson"))));
  }

  @Test
  void aNotFoundPageStopsTheRunNamingTheSourceAndStatus() throws IOException {
    Cli r = Cli.run("run", "--config", config("/nothing").toString(), "--output", tmp.resolve("out").toString());
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), equalTo("error: source patients: http://127.0.0.1:" + server.getAddress().getPort()
        + "/nothing answered HTTP 404\n"));
    keyVariable = "USER_THAT_IS_NOT_SET_HERE";
    Cli unset = Cli.run("run", "--config", config("/patients").toString(), "--output", tmp.resolve("out").toString());
    assertThat(unset.err(), equalTo("error: source patients: the environment variable USER_THAT_IS_NOT_SET_HERE"
        + " (http.headers_env.X-Api-Key) is not set\n"));
    keyVariable = "PATH";
    Cli wrong = Cli.run("run", "--config", config("/patients").toString(), "--output", tmp.resolve("out").toString());
    assertThat(wrong.err(), equalTo("error: source patients: http://127.0.0.1:" + server.getAddress().getPort()
        + "/patients answered HTTP 401 (check the credentials in http.headers_env)\n"));
  }
}
