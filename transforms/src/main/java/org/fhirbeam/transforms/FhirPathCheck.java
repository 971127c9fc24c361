package org.fhirbeam.transforms;

import java.io.Serializable;
import java.util.List;

/**
 * A FHIRPath invariant that {@link ProfileInvariants} could not turn into SQL, checked with HAPI's FHIRPath engine on
 * each built resource instead (validation mode {@code compiled}), never with the whole validator.
 *
 * @param steps the path from the resource to the elements it applies to, as the validator names them in locations
 *     ({@code participant}, {@code period}, {@code value.ofType(Range)}), each with whether it repeats; empty for the
 *     resource itself
 * @param expression the invariant's FHIRPath expression, evaluated on each such element
 * @param messageId the validator's message id ({@code http://hl7.org/fhir/StructureDefinition/Range#rng-2})
 * @param message the validator's message ({@code Constraint failed: rng-2: '...'})
 */
public record FhirPathCheck(List<Step> steps, String expression, String messageId, String message)
    implements Serializable {

  public FhirPathCheck {
    steps = List.copyOf(steps);
  }

  /** One step of the path: an element, and whether it repeats (its locations take an index). */
  public record Step(String name, boolean repeating) implements Serializable {}
}
