package org.fhirbeam.pipeline.bench;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.not;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A server a JVM started goes with it when the JVM is stopped by a signal, as `bench` is by Ctrl-C. */
class CloseAtExitTest {
  /** Starts a real Kafka broker, says so, and waits to be stopped. */
  public static void main(String[] args) throws Exception {
    KafkaBroker broker = KafkaBroker.start(KafkaBroker.classpathFile(Path.of(args[0])));
    System.out.println("ready " + broker.bootstrapServers());
    System.out.flush();
    Thread.sleep(TimeUnit.MINUTES.toMillis(5));
  }

  @Test
  void aKafkaBrokerStopsWhenTheJvmThatStartedItIsStoppedBySigterm() throws Exception {
    Path home = Path.of("..").toAbsolutePath().normalize(); // the tests run in pipeline/
    Process jvm = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
        "-cp", System.getProperty("java.class.path"), CloseAtExitTest.class.getName(), home.toString())
        .redirectErrorStream(true).start();
    List<ProcessHandle> broker = List.of();
    try {
      BufferedReader out = new BufferedReader(new InputStreamReader(jvm.getInputStream(), StandardCharsets.UTF_8));
      String line;
      while ((line = out.readLine()) != null && !line.startsWith("ready ")) {
        // the broker's start
      }
      assertThat("the JVM said it started the broker", line != null, is(true));
      broker = jvm.descendants().filter(ProcessHandle::isAlive).toList();
      assertThat(broker, is(not(empty())));
      jvm.destroy(); // SIGTERM
      assertThat(jvm.waitFor(60, TimeUnit.SECONDS), is(true));
      // The hook waits for the broker to exit before the JVM does.
      assertThat(broker.stream().filter(ProcessHandle::isAlive).toList(), is(empty()));
    } finally {
      jvm.descendants().forEach(ProcessHandle::destroyForcibly);
      jvm.destroyForcibly();
      broker.forEach(ProcessHandle::destroyForcibly); // orphans, when the test fails
    }
  }
}
