/** FHIR validation of mapped resources with HAPI's validator, offline, against R4 and local implementation guides. */
package org.fhirbeam.validation;
