package org.fhirbeam.io;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.allOf;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.InputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every connection gets the run's DuckDB settings; extensions are loaded at start and never downloaded. */
class DuckDbTest {
  @TempDir
  Path dir;

  static String setting(Connection c, String name) throws SQLException {
    try (Statement st = c.createStatement();
        ResultSet rs = st.executeQuery("SELECT current_setting(" + DuckDb.literal(name) + ")::VARCHAR")) {
      rs.next();
      return rs.getString(1);
    }
  }

  @Test
  void settingsApplyToEveryConnection() throws SQLException {
    DuckDbSettings s = new DuckDbSettings("unused.db", false, "300MB", 1, List.of("json", "parquet", "icu"),
        dir.resolve("spill").toString(), dir.resolve("ext").toString());
    try (Connection c = DuckDb.openInMemory(s)) {
      assertThat(setting(c, "threads"), equalTo("1"));
      assertThat(setting(c, "temp_directory"), equalTo(dir.resolve("spill").toString()));
      assertThat(setting(c, "extension_directory"), equalTo(dir.resolve("ext").toString()));
      assertThat(setting(c, "preserve_insertion_order"), equalTo("true"));
      assertThat(setting(c, "autoinstall_known_extensions"), equalTo("false"));
    }
    DuckDbSettings unordered = new DuckDbSettings("unused.db", false, "300MB", 1, List.of(), null, null, false);
    try (Connection c = DuckDb.openInMemory(unordered)) {
      assertThat(setting(c, "preserve_insertion_order"), equalTo("false"));
      assertThat(setting(c, "memory_limit"), equalTo("286.1 MiB"));
    }
  }

  @Test
  void anExtensionThatIsNotBuiltInOrInstalledLocallyStopsWithWhatToDo() {
    DuckDbSettings s = new DuckDbSettings("unused.db", false, null, 0, List.of("json", "spatial"), null,
        dir.resolve("ext").toString());
    InputException e = assertThrows(InputException.class, () -> DuckDb.openInMemory(s));
    assertThat(e.getMessage(), allOf(
        containsString("DuckDB extension 'spatial' (duckdb.extensions) is not built into DuckDB v1.5.6 and is not"
            + " installed in " + dir.resolve("ext")),
        containsString("runs never download extensions"),
        containsString("copy spatial.duckdb_extension into " + dir.resolve("ext") + "/v1.5.6/linux_amd64/"),
        containsString("(built in: json, parquet, icu, core_functions)")));
  }
}
