package org.fhirbeam.io;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.fhirbeam.io.ElementPath.Step;
import org.junit.jupiter.api.Test;

/** Values inside extensions, found by url in resources turned into structs, as the quality figures read them. */
class ElementPathTest {
  static final String RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";
  static final String GEO = "http://hl7.org/fhir/StructureDefinition/geolocation";

  static final ElementPath RACE_CODE = new ElementPath(List.of(new Step("extension", -1, RACE),
      new Step("extension", -1, "ombCategory"), new Step("valueCoding", -1, null), new Step("code", -1, null)));
  static final ElementPath RACE_TEXT = new ElementPath(List.of(new Step("extension", -1, RACE),
      new Step("extension", -1, "text"), new Step("valueString", -1, null)));
  static final ElementPath LATITUDE = new ElementPath(List.of(new Step("address", 0, null),
      new Step("extension", -1, GEO), new Step("extension", -1, "latitude"), new Step("valueDecimal", -1, null)));
  // A repeating primitive inside an extension, at its second position.
  static final ElementPath SECOND_LINE = new ElementPath(List.of(new Step("extension", -1, "urn:x"),
      new Step("valueAddress", -1, null), new Step("line", 1, null)));

  @Test
  void theStructureHoldsJustThePathsWithTheirUrlsAndLists() {
    assertThat(ElementPath.structType(List.of(RACE_CODE, RACE_TEXT, LATITUDE, SECOND_LINE)), equalTo("'{"
        + "\"extension\":[{\"url\":\"VARCHAR\",\"extension\":[{\"url\":\"VARCHAR\","
        + "\"valueCoding\":{\"code\":\"VARCHAR\"},\"valueString\":\"VARCHAR\"}],\"valueAddress\":{\"line\":[\"VARCHAR\"]}}],"
        + "\"address\":[{\"extension\":[{\"url\":\"VARCHAR\",\"extension\":[{\"url\":\"VARCHAR\","
        + "\"valueDecimal\":\"VARCHAR\"}]}]}]}'"));
  }

  @Test
  void eachValueIsPickedByTheUrlsOnItsPathAndIsNullWhereAbsent() throws SQLException {
    List<ElementPath> paths = List.of(RACE_CODE, RACE_TEXT, LATITUDE, SECOND_LINE);
    // The first resource has every value, its extensions in another order than the paths name them; the second
    // has the race extension without an OMB category and a geolocation on its second address only.
    String full = "{\"extension\":[{\"url\":\"urn:x\",\"valueAddress\":{\"line\":[\"1 Main St\",\"Flat 2\"]}},"
        + "{\"url\":\"" + RACE + "\",\"extension\":[{\"url\":\"text\",\"valueString\":\"White\"},"
        + "{\"url\":\"ombCategory\",\"valueCoding\":{\"system\":\"urn:oid:2.16.840.1.113883.6.238\","
        + "\"code\":\"2106-3\"}}]}],\"address\":[{\"extension\":[{\"url\":\"" + GEO + "\",\"extension\":["
        + "{\"url\":\"longitude\",\"valueDecimal\":-71.06},{\"url\":\"latitude\",\"valueDecimal\":42.36}]}]}]}";
    String partial = "{\"extension\":[{\"url\":\"" + RACE + "\",\"extension\":[{\"url\":\"text\","
        + "\"valueString\":\"Other Race\"}]}],\"address\":[{\"city\":\"Boston\"},{\"extension\":[{\"url\":\"" + GEO
        + "\",\"extension\":[{\"url\":\"latitude\",\"valueDecimal\":1.5}]}]}]}";
    List<String> values = new ArrayList<>();
    for (ElementPath p : paths) {
      values.add(p.sql("s"));
    }
    try (Connection db = DriverManager.getConnection("jdbc:duckdb:"); Statement st = db.createStatement();
        ResultSet rs = st.executeQuery("SELECT " + String.join(", ", values) + " FROM (SELECT json_transform(r, "
            + ElementPath.structType(paths) + ") AS s FROM (VALUES (" + DuckDb.literal(full) + "), ("
            + DuckDb.literal(partial) + ")) AS t(r)) ORDER BY 1 NULLS LAST")) {
      List<List<String>> rows = new ArrayList<>();
      while (rs.next()) {
        rows.add(Arrays.asList(rs.getString(1), rs.getString(2), rs.getString(3), rs.getString(4)));
      }
      assertThat(rows, equalTo(List.of(Arrays.asList("2106-3", "White", "42.36", "Flat 2"),
          Arrays.asList(null, "Other Race", null, null))));
    }
  }
}
