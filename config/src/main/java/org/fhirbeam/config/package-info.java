/** Typed pipeline and mapping configuration loaded from YAML, with every error pointing at file, line and key. */
package org.fhirbeam.config;
