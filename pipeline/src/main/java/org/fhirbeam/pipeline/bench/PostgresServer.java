package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real, throwaway PostgreSQL server on loopback for the tests and the bench's database cases: its own cluster in
 * a temporary folder (initdb), started with pg_ctl on a free port and stopped by {@link #close}. Needs the
 * PostgreSQL server binaries (Debian package {@code postgresql}; .ci/run installs it); as root it runs them as the
 * {@code postgres} user.
 */
public final class PostgresServer implements AutoCloseable {
  public static final String USER = "fhirbeam";
  public static final String PASSWORD = "test-only-secret";

  final Path dir;
  final int port;
  /** A file holding the password, for a source's {@code password_file}. */
  public final Path passwordFile;
  private final Path bin;
  private final CloseAtExit atExit;

  private PostgresServer(Path dir, int port, Path bin, Path passwordFile) {
    this.dir = dir;
    this.port = port;
    this.bin = bin;
    this.passwordFile = passwordFile;
    this.atExit = new CloseAtExit("PostgreSQL", this);
  }

  public static PostgresServer start() throws IOException, InterruptedException {
    Path bin = binaries();
    Path dir = Files.createTempDirectory("fhirbeam-pg");
    Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxrwxrwx"));
    Path pw = Files.writeString(dir.resolve("pw"), PASSWORD + "\n");
    Files.setPosixFilePermissions(pw, PosixFilePermissions.fromString("rw-r--r--"));
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    PostgresServer server = new PostgresServer(dir, port, bin, pw);
    server.run(bin.resolve("initdb").toString(), "-D", dir.resolve("data").toString(), "-U", USER,
        "--pwfile=" + pw, "-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync");
    server.run(bin.resolve("pg_ctl").toString(), "-D", dir.resolve("data").toString(), "-w", "-l",
        dir.resolve("log").toString(), "-o", "-p " + port + " -c listen_addresses=127.0.0.1 -k " + dir
            + " -c fsync=off", "start");
    return server;
  }

  public String url(String database) {
    return "jdbc:postgresql://127.0.0.1:" + port + "/" + database;
  }

  public Connection connect(String database) throws SQLException {
    return DriverManager.getConnection(url(database), USER, PASSWORD);
  }

  /** The folder of initdb and pg_ctl: on the PATH, or Debian's /usr/lib/postgresql/VERSION/bin. */
  static Path binaries() throws IOException {
    for (String p : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (!p.isEmpty() && Files.isExecutable(Path.of(p, "initdb")) && Files.isExecutable(Path.of(p, "pg_ctl"))) {
        return Path.of(p);
      }
    }
    Path debian = Path.of("/usr/lib/postgresql");
    if (Files.isDirectory(debian)) {
      try (Stream<Path> versions = Files.list(debian)) {
        for (Path v : versions.sorted(java.util.Comparator.reverseOrder()).toList()) {
          if (Files.isExecutable(v.resolve("bin/initdb"))) {
            return v.resolve("bin");
          }
        }
      }
    }
    throw new IllegalStateException("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install"
        + " -y postgresql (.ci/run does this)");
  }

  private void run(String... command) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>();
    if ("root".equals(System.getProperty("user.name"))) {
      cmd.addAll(List.of("runuser", "-u", "postgres", "--"));
    }
    cmd.addAll(List.of(command));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("cmd.log").toFile())
        .start();
    if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
      p.destroyForcibly();
      throw new IllegalStateException(String.join(" ", command) + " failed: " + Files.readString(dir.resolve("cmd.log")));
    }
  }

  @Override
  public void close() throws IOException, InterruptedException {
    atExit.cancel();
    try {
      run(bin.resolve("pg_ctl").toString(), "-D", dir.resolve("data").toString(), "-m", "fast", "-w", "stop");
    } finally {
      org.fhirbeam.io.FileTrees.deleteTree(dir);
    }
  }
}
