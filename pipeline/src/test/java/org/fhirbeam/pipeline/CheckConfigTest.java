package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.endsWith;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.startsWith;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code check-config} refuses what a run would refuse before reading rows: paths that match no file, SQL that
 * does not parse or bind against the files' columns, mapping errors, each at its own file and line, all at once.
 */
class CheckConfigTest {
  @TempDir
  Path tmp;

  Path mapping;

  @BeforeEach
  void files() throws IOException {
    Files.writeString(tmp.resolve("people.csv"), "id,sex\np1,f\np2,m\n");
    mapping = Files.writeString(tmp.resolve("m.yaml"), """
        name: people
        source: named
        resource: Patient
        id: {column: id}
        elements:
          gender: {column: sex, map: {f: female, m: male}}
        """);
  }

  /** A job whose mapping reads {@code named}, the query source over {@code people} (line 4: its path). */
  Path job(String peoplePath, String query) throws IOException {
    return Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n  people:\n    path: "
        + peoplePath + "\n  named:\n    sql: |\n" + query.indent(6) + "mappings: [m.yaml]\n");
  }

  Path config() {
    return tmp.resolve("p.yaml");
  }

  static String checkFails(Path config) {
    Cli r = Cli.run("check-config", config.toString());
    assertThat(r.out(), equalTo(""));
    assertThat(r.err(), r.code(), equalTo(2));
    return r.err();
  }

  @Test
  void sqlThatDoesNotParseIsAnErrorAtItsKey() throws IOException {
    job("people.csv", "SELECT * FROM people ORDER BY BY");
    assertThat(checkFails(config()), equalTo("error: " + config() + ":6: sources.named.sql: the query failed:"
        + " Parser Error: syntax error at or near \"BY\"\n"));
  }

  @Test
  void sqlNamingAColumnTheFilesLackIsAnErrorAtItsKey() throws IOException {
    job("people.csv", "SELECT id, gendr AS sex FROM people");
    assertThat(checkFails(config()), equalTo("error: " + config() + ":6: sources.named.sql: the query failed:"
        + " Binder Error: Referenced column \"gendr\" not found in FROM clause!\n"));
  }

  @Test
  void aQueryIsBoundAgainstTheSourcesItNamesOnly() throws IOException {
    // Another mapping reads an optional source without files, which the query does not name: it is no table of the
    // query, so the error does not blame its absence.
    Files.writeString(tmp.resolve("x.yaml"), Files.readString(mapping).replace("name: people", "name: extra")
        .replace("source: named", "source: extra"));
    Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n  people: {path: people.csv}\n"
        + "  extra: {path: none-*.csv, optional: true}\n  named: {sql: \"SELECT id, gendr AS sex FROM people\"}\n"
        + "mappings: [m.yaml, x.yaml]\n");
    assertThat(checkFails(config()), equalTo("error: " + config() + ":5: sources.named.sql: the query failed:"
        + " Binder Error: Referenced column \"gendr\" not found in FROM clause!\n"));
  }

  @Test
  void aPathMatchingNoFileIsAnErrorAtItsKeyAndTheSqlIsStillParsed() throws IOException {
    job("exports/*.csv", "SELECT * FROM people ORDER BY BY");
    assertThat(checkFails(config()), equalTo("error: the configuration has 2 problems:\n"
        + "  " + config() + ":4: sources.people.path: " + tmp + "/exports/*.csv matches no file\n"
        + "  " + config() + ":6: sources.named.sql: the query failed: Parser Error: syntax error at or near \"BY\"\n"));
  }

  @Test
  void anOptionalSourceWithoutFilesPasses() throws IOException {
    Files.writeString(mapping, Files.readString(mapping).replace("source: named", "source: people"));
    Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n  people: {path: exports/*.csv,"
        + " optional: true}\nmappings: [m.yaml]\n");
    Cli r = Cli.run("check-config", config().toString());
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), equalTo("OK: " + config() + " (1 source(s), 1 mapping(s))\n"));
  }

  @Test
  void mappingColumnsAreCheckedAgainstTheQuerysColumns() throws IOException {
    job("people.csv", "SELECT id, sex AS gender_code FROM people");
    assertThat(checkFails(config()), equalTo("error: " + mapping + ":6: gender: column 'sex' is not in source"
        + " named (columns: id, gender_code)\n"));
  }

  @Test
  void aMappingsSourceAndResourceErrorsAreAtTheirOwnLines() throws IOException {
    job("people.csv", "SELECT * FROM people");
    Files.writeString(mapping, Files.readString(mapping).replace("source: named", "source: nobody")
        .replace("resource: Patient", "resource: Patients"));
    assertThat(checkFails(config()), equalTo("error: the configuration has 2 problems:\n"
        + "  " + mapping + ":2: source: names source 'nobody', which " + config() + " does not declare (declared:"
        + " people, named)\n"
        + "  " + mapping + ":3: resource: 'Patients' is not a FHIR R4 resource type\n"));
  }

  @Test
  void aMissingMappingFileIsNamedWithTheLineThatNamesIt() throws IOException {
    job("people.csv", "SELECT * FROM people");
    Files.writeString(config(), Files.readString(config()).replace("mappings: [m.yaml]",
        "mappings:\n  - m.yaml\n  - absent.yaml"));
    assertThat(checkFails(config()), equalTo("error: " + config() + ":10: mappings[1]: no mapping file "
        + tmp.resolve("absent.yaml") + "\n"));
  }

  @Test
  void aDuckDbSettingThatFailsIsReportedOnce() throws IOException {
    job("people.csv", "SELECT * FROM people");
    Cli r = Cli.run("check-config", config().toString(), "--set", "duckdb.extensions=[json, spatial]", "--set",
        "duckdb.extension_directory=" + tmp.resolve("ext"));
    assertThat(r.code(), equalTo(2));
    assertThat(r.err().lines().count(), equalTo(1L));
    assertThat(r.err(), startsWith("error: DuckDB extension 'spatial' (duckdb.extensions) is not built into DuckDB"
        + " v1.5.6 and is not installed in " + tmp.resolve("ext") + "; runs never download extensions."));
  }

  /**
   * The shipped jobs pass; the Synthea job's mappings claim US Core profiles, and check-config warns of the required
   * elements a row without a value would leave out (ProfileConformanceTest has them all).
   */
  @Test
  void theShippedJobsPass() {
    for (String job : new String[] {"default", "synthea"}) {
      Path config = DefaultJobTest.HOME.resolve("config/pipelines/" + job + ".yaml");
      Cli r = Cli.run("check-config", config.toString());
      assertThat(r.err(), r.code(), equalTo(0));
      assertThat(r.out(), endsWith("OK: " + config + (job.equals("default") ? " (1 source(s), 1 mapping(s))\n"
          : " (11 source(s), 10 mapping(s))\n")));
      // Synthea's: six of US Core (ProfileConformanceTest), base R4's Encounter.class, and the two vital signs whose
      // profiles its Observation rows can never meet (a panel's members, blood pressure's components).
      assertThat(r.out().lines().filter(l -> l.startsWith("warning: ")).count(), equalTo(job.equals("default") ? 0L
          : 9L));
      if (job.equals("synthea")) {
        assertThat(r.out(), containsString("observation.yaml:4: rows with the code that implies Observation Blood"
            + " Pressure Profile give resources that do not conform: mapping synthea_observation never writes"
            + " Observation.component, which Observation Blood Pressure Profile requires (min 2)\n"));
      }
    }
  }

  /** A mapping that claims a profile whose required elements it never writes fails before any row is read. */
  @Test
  void aMappingThatCanNeverConformToTheProfileItClaimsFails() throws IOException {
    Files.writeString(mapping, Files.readString(mapping) + "  meta.profile[0]: {value:"
        + " \"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"}\n");
    Path config = Files.writeString(tmp.resolve("p.yaml"), "input_dir: " + tmp + "\nsources:\n  named: {path:"
        + " people.csv}\nmappings: [m.yaml]\nvalidation:\n  packages: [" + DefaultJobTest.HOME.resolve(
            "config/packages/hl7.fhir.us.core-3.1.1.tgz") + "]\n");
    assertThat(checkFails(config), equalTo("error: the configuration has 2 problems:\n"
        + "  " + mapping + ":3: mapping people never writes Patient.identifier, which US Core Patient Profile requires"
        + " (min 1): no resource of it can conform\n"
        + "  " + mapping + ":3: mapping people never writes Patient.name, which US Core Patient Profile requires"
        + " (min 1): no resource of it can conform\n"));
    // Without the package, the profile is unknown: a warning, and the check passes.
    Files.writeString(config, Files.readString(config).replaceAll("validation:[\\s\\S]*", ""));
    Cli r = Cli.run("check-config", config.toString());
    assertThat(r.err(), r.code(), equalTo(0));
    assertThat(r.out(), equalTo("warning: " + mapping + ":3: mapping people claims profile"
        + " http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient, which is not among the loaded definitions"
        + " (validation.packages): not checked\nOK: " + config + " (1 source(s), 1 mapping(s))\n"));
    // A profile every resource is validated against must be of every mapping's type.
    Files.writeString(config, Files.readString(config) + "validation:\n  packages: [" + DefaultJobTest.HOME.resolve(
        "config/packages/hl7.fhir.us.core-3.1.1.tgz") + "]\n  profiles:"
        + " [http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition]\n");
    assertThat(checkFails(config), equalTo("error: the configuration has 3 problems:\n"
        + "  " + config + ": validation.profiles: http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition is"
        + " a profile of Condition: every resource of mapping(s) people would fail it (name a mapping's profiles in its"
        + " meta.profile)\n"
        + "  " + mapping + ":3: mapping people never writes Patient.identifier, which US Core Patient Profile requires"
        + " (min 1): no resource of it can conform\n"
        + "  " + mapping + ":3: mapping people never writes Patient.name, which US Core Patient Profile requires"
        + " (min 1): no resource of it can conform\n"));
  }
}
