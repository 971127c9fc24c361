/**
 * Data-quality stages that run on the built resources: FHIRPath invariants declared in mappings, and ids that
 * resources of one type share.
 */
package org.fhirbeam.quality;
