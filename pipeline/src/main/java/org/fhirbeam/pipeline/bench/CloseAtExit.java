package org.fhirbeam.pipeline.bench;

/**
 * Closes a server that a bench or a test started in processes of its own (a Kafka broker, S3Mock, PostgreSQL, a
 * standalone Spark cluster) when this JVM exits without having closed it: on SIGINT (Ctrl-C on {@code bench}) or
 * SIGTERM, which skip the {@code finally} blocks that close it otherwise, and would leave the server running. A
 * shutdown hook, which the server's own {@code close} removes.
 */
final class CloseAtExit {
  private final Thread hook;

  /** Registers the hook that closes {@code server}; {@code name} names its thread. */
  CloseAtExit(String name, AutoCloseable server) {
    hook = new Thread(() -> {
      try {
        server.close();
      } catch (Exception e) {
        // the JVM is exiting: nothing to report to
      }
    }, "close " + name + " at exit");
    Runtime.getRuntime().addShutdownHook(hook);
  }

  /** The server is being closed: the hook is no longer needed. */
  void cancel() {
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException exiting) {
      // the JVM is exiting, and this is the hook closing the server
    }
  }
}
