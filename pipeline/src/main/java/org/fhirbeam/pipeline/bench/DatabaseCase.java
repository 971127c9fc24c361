package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import org.postgresql.PGConnection;

/**
 * The database the {@code source-jdbc} and {@code jdbcio} cases read: a throwaway PostgreSQL server on loopback
 * whose table {@code public.patients} holds the bench CSV's rows as text, with a {@code row_id} to partition by.
 * Both cases read it in {@link #PARTITIONS} key ranges of {@code row_id}, one per core.
 */
final class DatabaseCase implements AutoCloseable {
  static final int PARTITIONS = 2;

  private final PostgresServer server;
  final Path config;

  private DatabaseCase(PostgresServer server, Path config) {
    this.server = server;
    this.config = config;
  }

  /** Starts the server, loads {@code csv} into it, and writes the job configuration of a source that reads it. */
  static DatabaseCase start(Path csv, Path work) throws IOException, InterruptedException, SQLException {
    PostgresServer server = PostgresServer.start();
    try (Connection c = server.connect("postgres"); Statement st = c.createStatement();
        Reader in = Files.newBufferedReader(csv)) {
      st.execute("CREATE TABLE public.patients (row_id BIGINT GENERATED ALWAYS AS IDENTITY, patient_id TEXT,"
          + " first_name TEXT, last_name TEXT, birth_date TEXT, gender TEXT)");
      c.unwrap(PGConnection.class).getCopyAPI().copyIn("COPY public.patients (patient_id, first_name, last_name,"
          + " birth_date, gender) FROM STDIN WITH (FORMAT csv, HEADER true)", in);
      st.execute("ANALYZE public.patients");
    } catch (IOException | SQLException | RuntimeException e) {
      server.close();
      throw e;
    }
    Path config = Files.writeString(work.resolve("jdbc-source.yaml"), "sources:\n  patients:\n    jdbc:\n"
        + "      url: " + server.url("postgres") + "\n      user: " + PostgresServer.USER + "\n      password_file: "
        + server.passwordFile + "\n      table: public.patients\n      partition_column: row_id\n      partitions: "
        + PARTITIONS + "\nmappings: [" + org.fhirbeam.pipeline.FhirBeam.home().resolve("config/mappings/patient.yaml")
        + "]\n");
    return new DatabaseCase(server, config);
  }

  /** The arguments of {@link JdbcIoBench}: the same table, read in the same number of key ranges. */
  java.util.List<String> jdbcIoArguments() {
    return java.util.List.of(server.url("postgres"), PostgresServer.USER, server.passwordFile.toString(),
        "public.patients", "row_id", String.valueOf(PARTITIONS));
  }

  @Override
  public void close() throws IOException, InterruptedException {
    server.close();
  }
}
