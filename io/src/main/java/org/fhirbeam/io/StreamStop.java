package org.fhirbeam.io;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The request to stop a streaming run, in this JVM (SIGINT or SIGTERM): every stream reader then emits nothing more,
 * so the run commits what it read and ends normally.
 */
public final class StreamStop {
  private static final AtomicBoolean STOP = new AtomicBoolean();

  private StreamStop() {}

  /** Asks every stream reader in this JVM to stop. */
  public static void request() {
    STOP.set(true);
  }

  /** Forgets an earlier request (a new run in the same JVM). */
  public static void reset() {
    STOP.set(false);
  }

  /** Whether the readers are asked to stop. */
  public static boolean requested() {
    return STOP.get();
  }
}
