package org.fhirbeam.config;

import java.io.Serializable;

/**
 * Where an {@code s3://} source's objects are fetched from. Credentials come from the standard AWS chain
 * (environment variables, Java system properties, the shared profile), never from the configuration.
 *
 * @param endpoint an S3-compatible endpoint (MinIO, ...); null for AWS
 * @param region the region; null for the AWS chain's (environment, profile), else {@code us-east-1}
 * @param pathStyle path-style addressing ({@code endpoint/bucket/key}), as most S3-compatible stores need
 */
public record S3Settings(String endpoint, String region, boolean pathStyle) implements Serializable {
  public static final S3Settings DEFAULT = new S3Settings(null, null, false);
}
