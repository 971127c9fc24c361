package org.fhirbeam.pipeline.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Deterministic synthetic data in Synthea's CSV export layout (the columns config/pipelines/synthea.yaml reads),
 * for the Synthea-mix case of the bench: per patient 5 encounters, 2 conditions, 10 observations, 2 medications,
 * 2 procedures, 2 immunizations and 1 allergy (25 rows), plus organizations and providers. Values follow
 * Synthea's distributions loosely (code lists, classes, numeric and text observations); about 0.5% of
 * observations carry a value that is not a number, so the reject path is measured too. Written once per size
 * and cached.
 */
final class SyntheaBenchData {
  /** Rows per patient over the eight per-patient files. */
  static final int ROWS_PER_PATIENT = 25;

  private SyntheaBenchData() {}

  /** The folder of CSV files with about {@code rows} rows in all, generated if missing. */
  static Path folder(Path dir, long rows) throws SQLException, IOException {
    long patients = Math.max(1, rows / ROWS_PER_PATIENT);
    Path folder = dir.resolve("synthea-" + patients);
    if (Files.isDirectory(folder)) {
      return folder;
    }
    Path partial = dir.resolve("synthea-" + patients + ".partial");
    Files.createDirectories(partial);
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:"); Statement st = c.createStatement()) {
      for (Map.Entry<String, String> e : queries(patients).entrySet()) {
        st.execute("COPY (" + e.getValue() + ") TO '" + partial.resolve(e.getKey() + ".csv").toString()
            .replace("'", "''") + "' (HEADER)");
      }
    }
    Files.move(partial, folder, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    return folder;
  }

  /** The number of input rows the folder for {@code rows} holds. */
  static long rows(long rows) {
    long patients = Math.max(1, rows / ROWS_PER_PATIENT);
    return patients * ROWS_PER_PATIENT + organizations(patients) + providers(patients);
  }

  private static long organizations(long patients) {
    return Math.max(1, patients / 1000);
  }

  private static long providers(long patients) {
    return Math.max(1, patients / 200);
  }

  /** A deterministic UUID-shaped id from a text key. */
  private static String id(String key) {
    return "(list_transform([md5(" + key + ")], h -> substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' ||"
        + " substr(h, 13, 4) || '-' || substr(h, 17, 4) || '-' || substr(h, 21, 12))[1])";
  }

  private static String pick(String list, String index) {
    return "(" + list + ")[1 + (" + index + ") % len(" + list + ")]";
  }

  private static String time(String dayExpr, String secondsExpr) {
    return "strftime(TIMESTAMP '2000-01-01' + to_days(CAST(" + dayExpr + " AS INTEGER)) + to_seconds(" + secondsExpr
        + "), '%Y-%m-%dT%H:%M:%SZ')";
  }

  static Map<String, String> queries(long patients) {
    long orgs = organizations(patients);
    long providers = providers(patients);
    String patient = id("'patient-' || p");
    String encounter = id("'encounter-' || p || '-' || (e % 5)");
    String organization = id("'org-' || (p % " + orgs + ")");
    String provider = id("'provider-' || (p % " + providers + ")");
    String enc = "FROM range(" + patients + ") a(p), range(";
    Map<String, String> q = new LinkedHashMap<>();
    q.put("patients", "SELECT " + patient + " AS Id,"
        + " strftime(DATE '1930-01-01' + CAST((p * 7919) % 32000 AS INTEGER), '%Y-%m-%d') AS BIRTHDATE,"
        + " CASE WHEN p % 17 = 0 THEN strftime(DATE '2015-01-01' + CAST(p % 3000 AS INTEGER), '%Y-%m-%d') END AS DEATHDATE,"
        + " '999-' || lpad(CAST(p % 100 AS VARCHAR), 2, '0') || '-' || lpad(CAST(p % 10000 AS VARCHAR), 4, '0') AS SSN,"
        + " CASE WHEN p % 5 <> 0 THEN 'S999' || lpad(CAST(p % 100000 AS VARCHAR), 5, '0') END AS DRIVERS,"
        + " CASE WHEN p % 3 = 0 THEN 'X' || lpad(CAST(p % 10000000 AS VARCHAR), 8, '0') || 'X' END AS PASSPORT,"
        + " " + pick("['Mr.', 'Mrs.', 'Ms.', NULL]", "p") + " AS PREFIX,"
        + " " + pick("['Maria', 'John', 'Wei', 'Aiyana', 'Fatima', 'Kwame', 'Priya', 'Lucas', 'Hana', 'Diego']", "p * 7")
        + " || CAST(p % 1000 AS VARCHAR) AS FIRST,"
        + " " + pick("['Garcia', 'Smith', 'Chen', 'Mueller', 'O''Brien', 'Begay', 'Haddad', 'Okafor']", "p * 11")
        + " || CAST(p % 997 AS VARCHAR) AS LAST,"
        + " CASE WHEN p % 50 = 0 THEN 'Jr.' END AS SUFFIX,"
        + " CASE WHEN p % 9 = 0 THEN 'Keller' || CAST(p % 500 AS VARCHAR) END AS MAIDEN,"
        + " " + pick("['M', 'S', 'D', 'W', NULL]", "p") + " AS MARITAL,"
        + " " + pick("['white', 'white', 'white', 'black', 'asian', 'native', 'hawaiian', 'other']", "p * 3") + " AS RACE,"
        + " " + pick("['nonhispanic', 'nonhispanic', 'nonhispanic', 'hispanic']", "p * 5") + " AS ETHNICITY,"
        + " " + pick("['M', 'F']", "p") + " AS GENDER,"
        + " " + pick("['Boston  Massachusetts  US', 'Springfield  Massachusetts  US', 'Lowell  Massachusetts  US']", "p")
        + " AS BIRTHPLACE,"
        + " CAST(p % 999 AS VARCHAR) || ' ' || " + pick("['Main St', 'Elm Ave', 'Oak Road', 'Pine Way']", "p")
        + " AS ADDRESS,"
        + " " + pick("['Boston', 'Worcester', 'Cambridge', 'Lowell']", "p * 13") + " AS CITY,"
        + " 'Massachusetts' AS STATE, 'Middlesex County' AS COUNTY,"
        + " '0' || CAST(1000 + p % 2000 AS VARCHAR) AS ZIP,"
        + " CAST(42 + (p % 1000) / 1000.0 AS VARCHAR) AS LAT, CAST(-71 - (p % 1000) / 1000.0 AS VARCHAR) AS LON"
        + " FROM range(" + patients + ") a(p)");
    q.put("encounters", "SELECT " + encounter + " AS Id,"
        + " " + time("(p * 31 + e * 400) % 8000", "(p + e) % 86000") + " AS START,"
        + " " + time("(p * 31 + e * 400) % 8000", "(p + e) % 86000 + 900") + " AS STOP,"
        + " " + patient + " AS PATIENT, " + organization + " AS ORGANIZATION, " + provider + " AS PROVIDER,"
        + " " + pick("['ambulatory', 'wellness', 'outpatient', 'emergency', 'inpatient', 'urgentcare']", "p + e")
        + " AS ENCOUNTERCLASS,"
        + " " + pick("['185349003', '162673000', '185347001', '50849002']", "p * 3 + e") + " AS CODE,"
        + " " + pick("['Encounter for check up (procedure)', 'General examination of patient (procedure)',"
            + " 'Encounter for problem (procedure)', 'Emergency room admission (procedure)']", "p * 3 + e")
        + " AS DESCRIPTION,"
        + " CASE WHEN e % 3 = 0 THEN '444814009' END AS REASONCODE,"
        + " CASE WHEN e % 3 = 0 THEN 'Viral sinusitis (disorder)' END AS REASONDESCRIPTION"
        + " " + enc + "5) b(e)");
    q.put("conditions", "SELECT"
        + " strftime(DATE '2000-01-01' + CAST((p * 31 + e * 400) % 8000 AS INTEGER), '%Y-%m-%d') AS START,"
        + " CASE WHEN e = 0 THEN strftime(DATE '2000-01-20' + CAST((p * 31 + e * 400) % 8000 AS INTEGER),"
        + " '%Y-%m-%d') END AS STOP,"
        + " " + patient + " AS PATIENT, " + encounter + " AS ENCOUNTER,"
        + " " + pick("['444814009', '10509002', '195662009', '59621000', '15777000']", "p + e") + " AS CODE,"
        + " " + pick("['Viral sinusitis (disorder)', 'Acute bronchitis (disorder)', 'Acute viral pharyngitis"
            + " (disorder)', 'Essential hypertension (disorder)', 'Prediabetes']", "p + e") + " AS DESCRIPTION"
        + " " + enc + "2) b(e)");
    q.put("observations", "SELECT " + time("(p * 31 + (e % 5) * 400) % 8000", "(p + e) % 86000") + " AS DATE,"
        + " " + patient + " AS PATIENT, " + encounter + " AS ENCOUNTER,"
        + " CASE WHEN e = 9 THEN 'social-history' ELSE 'vital-signs' END AS CATEGORY,"
        + " " + pick("['8302-2', '29463-7', '39156-5', '8867-4', '9279-1', '8310-5', '8462-4', '8480-6', '2708-6',"
            + " '72166-2']", "e") + " AS CODE,"
        + " " + pick("['Body Height', 'Body Weight', 'Body mass index (BMI) [Ratio]', 'Heart rate', 'Respiratory"
            + " rate', 'Body temperature', 'Diastolic Blood Pressure', 'Systolic Blood Pressure', 'Oxygen"
            + " saturation in Arterial blood', 'Tobacco smoking status']", "e") + " AS DESCRIPTION,"
        + " CASE WHEN e = 9 THEN " + pick("['Never smoked tobacco (finding)', 'Former smoker (finding)']", "p")
        + " WHEN (p * 10 + e) % 199 = 0 THEN 'n/a'"
        + " ELSE CAST(round(50 + ((p * 37 + e * 101) % 1500) / 10.0, 1) AS VARCHAR) END AS VALUE,"
        + " CASE WHEN e = 9 THEN NULL ELSE " + pick("['cm', 'kg', 'kg/m2', '/min', '/min', 'Cel', 'mm[Hg]',"
            + " 'mm[Hg]', '%', '']", "e") + " END AS UNITS,"
        + " CASE WHEN e = 9 THEN 'text' ELSE 'numeric' END AS TYPE"
        + " " + enc + "10) b(e)");
    q.put("medications", "SELECT " + time("(p * 31 + e * 400) % 8000", "(p + e) % 86000") + " AS START,"
        + " CASE WHEN e = 0 THEN " + time("(p * 31 + e * 400) % 8000 + 30", "(p + e) % 86000") + " END AS STOP,"
        + " " + patient + " AS PATIENT, " + encounter + " AS ENCOUNTER,"
        + " " + pick("['313782', '562251', '834061', '1049221', '849574']", "p + e") + " AS CODE,"
        + " " + pick("['Acetaminophen 325 MG Oral Tablet', 'Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet',"
            + " 'Penicillin V Potassium 250 MG Oral Tablet', 'Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG"
            + " Oral Tablet', 'Naproxen sodium 220 MG Oral Tablet']", "p + e") + " AS DESCRIPTION,"
        + " CAST(1 + (p + e) % 12 AS VARCHAR) AS DISPENSES,"
        + " CASE WHEN e = 1 THEN '10509002' END AS REASONCODE,"
        + " CASE WHEN e = 1 THEN 'Acute bronchitis (disorder)' END AS REASONDESCRIPTION"
        + " " + enc + "2) b(e)");
    q.put("procedures", "SELECT " + time("(p * 31 + e * 400) % 8000", "(p + e) % 86000") + " AS DATE,"
        + " " + patient + " AS PATIENT, " + encounter + " AS ENCOUNTER,"
        + " " + pick("['430193006', '710824005', '428191000124101', '171207006']", "p + e") + " AS CODE,"
        + " " + pick("['Medication Reconciliation (procedure)', 'Assessment of health and social care needs"
            + " (procedure)', 'Documentation of current medications (procedure)', 'Depression screening"
            + " (procedure)']", "p + e") + " AS DESCRIPTION,"
        + " CAST(NULL AS VARCHAR) AS REASONCODE, CAST(NULL AS VARCHAR) AS REASONDESCRIPTION"
        + " " + enc + "2) b(e)");
    q.put("immunizations", "SELECT " + time("(p * 31 + e * 400) % 8000", "(p + e) % 86000") + " AS DATE,"
        + " " + patient + " AS PATIENT, " + encounter + " AS ENCOUNTER,"
        + " " + pick("['140', '113', '133', '08']", "p + e") + " AS CODE,"
        + " " + pick("['Influenza  seasonal  injectable  preservative free', 'Td (adult) preservative free',"
            + " 'Pneumococcal conjugate PCV 13', 'Hep B  adolescent or pediatric']", "p + e") + " AS DESCRIPTION"
        + " " + enc + "2) b(e)");
    q.put("allergies", "SELECT"
        + " strftime(DATE '2000-01-01' + CAST((p * 31) % 8000 AS INTEGER), '%Y-%m-%d') AS START,"
        + " CAST(NULL AS VARCHAR) AS STOP, " + patient + " AS PATIENT, " + encounter + " AS ENCOUNTER,"
        + " " + pick("['232347008', '419474003', '91935009']", "p") + " AS CODE,"
        + " " + pick("['Dander (animal) allergy', 'Allergy to mould', 'Allergy to peanuts']", "p") + " AS DESCRIPTION"
        + " " + enc + "1) b(e)");
    q.put("organizations", "SELECT " + id("'org-' || p") + " AS Id,"
        + " 'Clinic ' || p AS NAME, CAST(p % 999 AS VARCHAR) || ' Hospital Dr' AS ADDRESS, 'Boston' AS CITY,"
        + " 'MA' AS STATE, '02' || lpad(CAST(p % 1000 AS VARCHAR), 3, '0') AS ZIP, '555-' || lpad(CAST(p % 10000"
        + " AS VARCHAR), 4, '0') AS PHONE FROM range(" + orgs + ") a(p)");
    q.put("providers", "SELECT " + id("'provider-' || p") + " AS Id,"
        + " " + pick("['Lesley', 'Omar', 'Ingrid', 'Arjun']", "p") + " || p || ' ' || "
        + pick("['Fisher', 'Rossi', 'Larsen', 'Sharma']", "p * 3") + " || p AS NAME,"
        + " " + pick("['M', 'F']", "p") + " AS GENDER, CAST(p % 999 AS VARCHAR) || ' Hospital Dr' AS ADDRESS,"
        + " 'Boston' AS CITY, 'MA' AS STATE, '02' || lpad(CAST(p % 1000 AS VARCHAR), 3, '0') AS ZIP"
        + " FROM range(" + providers + ") a(p)");
    return q;
  }
}
