/**
 * Small immutable values passed between pipeline stages, the figures that travel with them ({@link
 * org.fhirbeam.data.Tally}), and the names of those figures.
 */
package org.fhirbeam.data;
