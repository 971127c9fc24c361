package org.fhirbeam.transforms;

import java.io.IOException;
import java.io.InputStream;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.duckdb.DuckDBFunctions;
import org.fhir.ucum.UcumEssenceService;
import org.fhir.ucum.UcumException;

/**
 * Units of UCUM, the grammar HAPI's validator checks the code of a Quantity (or Coding) of system
 * {@code http://unitsofmeasure.org} against, with the same service ({@code org.fhir.ucum}, its essence file). UCUM is a
 * grammar, not a list of codes, so a unit copied from the row is checked by a DuckDB function of a mapping's worker
 * database ({@value #FUNCTION}), with each unit's verdict kept.
 */
public final class UcumUnits {
  private UcumUnits() {}

  /** The DuckDB function: true for a unit UCUM accepts, false for one it does not, NULL for NULL. */
  static final String FUNCTION = "fhirbeam_ucum";

  /** The code system of UCUM's units. */
  public static final String SYSTEM = "http://unitsofmeasure.org";

  /** Units kept with their verdicts at most: the units of a job's rows are few. */
  private static final int KEPT = 10_000;

  private static final Map<String, String> VERDICTS = new ConcurrentHashMap<>();

  /** Loaded on first use: about 0.2 s, which a job without UCUM units never spends. */
  private static final class Service {
    static final UcumEssenceService INSTANCE = load();

    private static UcumEssenceService load() {
      try (InputStream essence = UcumEssenceService.class.getResourceAsStream("/ucum-essence.xml")) {
        return new UcumEssenceService(essence);
      } catch (IOException | UcumException e) {
        throw new IllegalStateException("UCUM's essence file cannot be read", e);
      }
    }
  }

  /** Why UCUM does not accept {@code unit}, or null when it does. */
  public static String error(String unit) {
    String verdict = VERDICTS.get(unit);
    if (verdict == null) {
      String error = Service.INSTANCE.validate(unit);
      verdict = error == null ? "" : error;
      if (VERDICTS.size() < KEPT) {
        VERDICTS.put(unit, verdict);
      }
    }
    return verdict.isEmpty() ? null : verdict;
  }

  /** Makes {@link #FUNCTION} known to {@code db}. */
  static void register(Connection db) throws SQLException {
    DuckDBFunctions.scalarFunction().withName(FUNCTION).withParameter(String.class).withReturnType(Boolean.class)
        .withFunction((String unit) -> unit == null ? null : error(unit) == null).register(db);
  }
}
