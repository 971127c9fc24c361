package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** Runs the command line in this JVM and captures what it prints. */
record Cli(int code, String out, String err) {
  static Cli run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = FhirBeam.execute(new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8), System.getenv(), args);
    Cli r = new Cli(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    if (code == 0 && args.length > 0 && args[0].equals("run")) {
      assertRanOnRequestedRunner(List.of(args), r.out());
    }
    return r;
  }

  /**
   * Every successful run through this helper checks that the runner that executed it is the one asked for, so a
   * test "on both runners" fails if the Spark run silently ran on the DirectRunner.
   */
  private static void assertRanOnRequestedRunner(List<String> args, String out) {
    // The summary's first line: Run <id> on <runner>: ...
    assertThat("the runner that executed the run", out.split(" ", 5)[3],
        equalTo(option(args, "--runner", "direct") + ":"));
  }

  /** The value of {@code --name VALUE} or {@code --name=VALUE}, as the command line takes either. */
  private static String option(List<String> args, String name, String otherwise) {
    for (int i = 0; i < args.size(); i++) {
      if (args.get(i).equals(name) && i + 1 < args.size()) {
        return args.get(i + 1);
      }
      if (args.get(i).startsWith(name + "=")) {
        return args.get(i).substring(name.length() + 1);
      }
    }
    return otherwise;
  }
}
