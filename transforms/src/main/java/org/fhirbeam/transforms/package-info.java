/** The mapping engine: YAML mappings checked against the FHIR R4 definitions, compiled once, applied to row batches. */
package org.fhirbeam.transforms;
