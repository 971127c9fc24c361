package org.fhirbeam.io;

import java.io.IOException;
import java.net.URI;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.S3Settings;
import org.fhirbeam.config.SourceConfig;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.ResponseTransformer;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * Fetches the objects an {@code s3://bucket/prefix/*.csv} source names (AWS S3 or an S3-compatible store) into a
 * local folder before the run, so DuckDB reads them as local files: DuckDB's httpfs extension cannot be
 * downloaded where extensions are not downloaded. Credentials come from the AWS default chain (environment
 * variables, Java system properties, the shared profile). Glob characters in the key match as in file paths
 * ({@code *} within a "folder", {@code **} across them); a key without them is one object or a "folder".
 */
public final class S3Objects {
  /** Where fetched objects are kept during the run. */
  static final Path FOLDER = Path.of(System.getProperty("java.io.tmpdir"), "fhirbeam-s3");

  private S3Objects() {}

  /** The local copy of each matching object, to its {@code s3://} URI, in key order. */
  static Map<Path, String> fetch(SourceConfig source) {
    String uri = source.path();
    String rest = uri.substring("s3://".length());
    int slash = rest.indexOf('/');
    String bucket = slash < 0 ? rest : rest.substring(0, slash);
    String pattern = slash < 0 ? "" : rest.substring(slash + 1);
    int glob = firstGlob(pattern);
    String prefix = glob < 0 ? pattern : pattern.substring(0, glob);
    PathMatcher matcher = glob < 0 ? null : FileSystems.getDefault().getPathMatcher("glob:" + pattern);
    Map<Path, String> out = new LinkedHashMap<>();
    try (S3Client s3 = client(source.s3())) {
      Path local = Files.createDirectories(FOLDER).resolve(source.name() + "-" + java.util.UUID.randomUUID());
      for (S3Object o : s3.listObjectsV2Paginator(b -> b.bucket(bucket).prefix(prefix)).contents()) {
        String key = o.key();
        boolean wanted = matcher != null ? matcher.matches(Path.of(key))
            : key.equals(pattern) || (key.startsWith(pattern.isEmpty() || pattern.endsWith("/") ? pattern : pattern + "/")
                && knownExtension(key));
        if (!wanted || key.endsWith("/")) {
          continue;
        }
        Path file = local.resolve(key).normalize();
        if (!file.startsWith(local)) {
          continue; // a key with .. segments would leave the folder
        }
        Files.createDirectories(file.getParent());
        s3.getObject(b -> b.bucket(bucket).key(key), ResponseTransformer.toFile(file));
        file.toFile().deleteOnExit();
        out.put(file, "s3://" + bucket + "/" + key);
      }
    } catch (SdkException e) {
      throw new InputException("source " + source.name() + ": " + uri + ": " + DuckDb.firstLine(e.getMessage()), e);
    } catch (IOException e) {
      throw new InputException("source " + source.name() + ": cannot store the objects of " + uri + ": "
          + e.getMessage(), e);
    }
    if (out.isEmpty() && !source.optional()) {
      throw new InputException(source.at("path") + ": no object matches " + uri);
    }
    return out;
  }

  private static S3Client client(S3Settings settings) {
    var builder = S3Client.builder().httpClient(UrlConnectionHttpClient.create())
        .credentialsProvider(DefaultCredentialsProvider.builder().build())
        .forcePathStyle(settings.pathStyle());
    Region region;
    if (settings.region() != null) {
      region = Region.of(settings.region());
    } else {
      try {
        region = DefaultAwsRegionProviderChain.builder().build().getRegion();
      } catch (SdkException e) {
        region = Region.US_EAST_1;
      }
    }
    builder.region(region);
    if (settings.endpoint() != null) {
      builder.endpointOverride(URI.create(settings.endpoint()));
    }
    return builder.build();
  }

  private static int firstGlob(String s) {
    for (int i = 0; i < s.length(); i++) {
      if ("*?{[".indexOf(s.charAt(i)) >= 0) {
        return i;
      }
    }
    return -1;
  }

  private static boolean knownExtension(String key) {
    String n = key.toLowerCase(Locale.ROOT).replaceAll("\\.gz$", "");
    return n.endsWith(".csv") || n.endsWith(".parquet") || n.endsWith(".json") || n.endsWith(".ndjson")
        || n.endsWith(".jsonl") || n.endsWith(".xlsx");
  }
}
