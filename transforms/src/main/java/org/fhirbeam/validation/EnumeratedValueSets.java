package org.fhirbeam.validation;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.ConceptValidationOptions;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.ValueSet;

/**
 * Answers "is this code in this value set" offline when the value set lists its codes one by one and their code
 * system is not loaded here as a CodeSystem resource (LOINC answer lists, CDC race codes, ...). HAPI's
 * terminology services then fail on the code system even for a listed code; the list alone decides membership. Codes that are not
 * listed are left to the next service in the chain, which reports them; code systems that are loaded are checked
 * by the in-memory service for real (codes and displays).
 */
final class EnumeratedValueSets extends BaseValidationSupport {
  EnumeratedValueSets(FhirContext context) {
    super(context);
  }

  @Override
  public String getName() {
    return "fhirbeam enumerated value sets";
  }

  @Override
  public CodeValidationResult validateCodeInValueSet(ValidationSupportContext context,
      ConceptValidationOptions options, String system, String code, String display, IBaseResource valueSet) {
    if (!(valueSet instanceof ValueSet vs) || system == null || code == null || !vs.hasCompose()
        || vs.getCompose().hasExclude()
        || context.getRootValidationSupport().fetchCodeSystem(system) != null) {
      return null;
    }
    for (ValueSet.ConceptSetComponent include : vs.getCompose().getInclude()) {
      if (!include.hasConcept() || include.hasFilter() || include.hasValueSet()) {
        return null; // not a plain list: membership cannot be decided from the value set alone
      }
    }
    for (ValueSet.ConceptSetComponent include : vs.getCompose().getInclude()) {
      if (system.equals(include.getSystem())) {
        for (ValueSet.ConceptReferenceComponent c : include.getConcept()) {
          if (code.equals(c.getCode())) {
            return new CodeValidationResult().setCode(code).setDisplay(c.hasDisplay() ? c.getDisplay() : display);
          }
        }
      }
    }
    return null;
  }

  /** Asked for every value set; it answers null (next in the chain) unless the rule above applies. */
  @Override
  public boolean isValueSetSupported(ValidationSupportContext context, String url) {
    return true;
  }
}
