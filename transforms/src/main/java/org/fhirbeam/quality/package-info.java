/** Data-quality rules that run on the built resources: FHIRPath invariants declared in mappings. */
package org.fhirbeam.quality;
