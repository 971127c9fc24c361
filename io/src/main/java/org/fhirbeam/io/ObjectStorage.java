package org.fhirbeam.io;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.regex.Pattern;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.aws2.options.S3ClientBuilderFactory;
import org.apache.beam.sdk.io.aws2.options.S3Options;
import org.apache.beam.sdk.io.aws2.s3.DefaultS3ClientBuilderFactory;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
import org.apache.beam.sdk.io.fs.MatchResult;
import org.apache.beam.sdk.io.fs.MoveOptions.StandardMoveOptions;
import org.apache.beam.sdk.io.fs.ResourceId;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.fhirbeam.config.InputException;
import org.fhirbeam.config.S3Settings;
import org.fhirbeam.config.SourceConfig;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.services.s3.S3ClientBuilder;

/**
 * Sources and outputs at URIs ({@code s3://bucket/prefix}) through Beam's own file systems ({@link FileSystems}),
 * which every worker of a runner has: the driver sets them up in the pipeline's options ({@link #configure}), and
 * Beam hands those to the workers. Credentials come from each node's AWS default chain (environment, system
 * properties, profile, instance role), never from the options. The region and an S3-compatible store's endpoint
 * come from the sources' {@code s3} settings when they name them (one store per run); else the region from the
 * driver's chain (or {@code us-east-1}) and the endpoint from the AWS SDK's own {@code AWS_ENDPOINT_URL} (or
 * {@code -Daws.endpointUrl}), then addressed path-style.
 */
public final class ObjectStorage {
  private static final Pattern URI_SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*://.*");

  private ObjectStorage() {}

  /** Whether {@code location} is a URI of a file system other than the local one, such as {@code s3://b/p}. */
  public static boolean isRemote(String location) {
    return URI_SCHEME.matcher(location).matches() && !location.startsWith("file://");
  }

  /**
   * The S3 settings of a run whose sources name them ({@code sources.NAME.s3}): Beam has one S3 file system per
   * pipeline, so every {@code s3://} source of a run must name the same store; null when none names one (the AWS
   * SDK's own settings then apply). An InputException names the source that differs.
   */
  public static S3Settings settingsOf(Collection<SourceConfig> sources) {
    SourceConfig first = null;
    for (SourceConfig s : sources) {
      if (s.path() == null || !isRemote(s.path()) || s.s3().equals(S3Settings.DEFAULT)) {
        continue;
      }
      if (first == null) {
        first = s;
      } else if (!s.s3().equals(first.s3())) {
        throw new InputException(s.at("s3") + ": differs from sources." + first.name() + ".s3; the s3:// sources"
            + " and output of a run are read and written through one S3 store");
      }
    }
    return first == null ? null : first.s3();
  }

  /**
   * Sets up Beam's S3 file system in {@code options}: with {@code settings} (from {@link #settingsOf}) when sources
   * name them, else from the AWS SDK's settings of this process, when the run uses object storage ({@code used}).
   * Beam registers the file system in every pipeline, and unless the options name a region it looks one up, which
   * off AWS waits for the instance-metadata endpoint to time out (1.2 s of a 1M-row local run): a run that does not
   * use it gets a region that is never asked for.
   */
  public static void configure(PipelineOptions options, boolean used, S3Settings settings) {
    S3Options s3 = options.as(S3Options.class);
    if (!used) {
      s3.setAwsRegion(Region.US_EAST_1);
      return;
    }
    Region region;
    if (settings != null && settings.region() != null) {
      region = Region.of(settings.region());
    } else {
      try {
        region = DefaultAwsRegionProviderChain.builder().build().getRegion();
      } catch (SdkException e) {
        region = Region.US_EAST_1;
      }
    }
    s3.setAwsRegion(region);
    String endpoint = settings != null && settings.endpoint() != null ? settings.endpoint()
        : System.getProperty("aws.endpointUrl", System.getenv("AWS_ENDPOINT_URL"));
    boolean pathStyle = settings != null && settings.endpoint() != null ? settings.pathStyle() : true;
    if (endpoint != null && !endpoint.isBlank()) {
      s3.setEndpoint(URI.create(endpoint));
      if (pathStyle) {
        s3.setS3ClientFactoryClass(PathStyle.class);
      }
    }
  }

  /**
   * Makes Beam's file systems reach object storage in this process before any pipeline exists (planning lists and
   * samples the objects of {@code s3://} sources); a pipeline later sets them up from its own options, which
   * {@link #configure} fills the same way.
   */
  public static void useBeforePipeline(S3Settings settings) {
    PipelineOptions options = PipelineOptionsFactory.create();
    configure(options, true, settings);
    FileSystems.setDefaultPipelineOptions(options);
  }

  /** Copies the object at {@code location} to the local file {@code to}, replacing it. */
  public static void copyToFile(String location, Path to) throws IOException {
    try (InputStream in = open(location)) {
      Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /**
   * The first {@code bytes} bytes of the object at {@code location} (all of it when it is not longer): the read is
   * abandoned there, not carried on to the object's end.
   */
  public static byte[] head(String location, int bytes) throws IOException {
    try (InputStream in = open(location)) {
      return in.readNBytes(bytes);
    }
  }

  /** Beam's S3 client with path-style addressing, as S3-compatible stores want; Beam 2.62 has no option for it. */
  public static final class PathStyle implements S3ClientBuilderFactory {
    @Override
    public S3ClientBuilder createBuilder(S3Options options) {
      return new DefaultS3ClientBuilderFactory().createBuilder(options).forcePathStyle(true);
    }
  }

  /** {@code location} as a file (not a directory) of its file system. */
  public static ResourceId file(String location) {
    return FileSystems.matchNewResource(location, false);
  }

  /**
   * Writes an object (replacing it). On object storage a new object appears whole or not at all; a local file is
   * written in place (see {@link #replace}).
   */
  public static OutputStream create(String location, String mimeType) throws IOException {
    return Channels.newOutputStream(FileSystems.create(file(location), mimeType));
  }

  public static InputStream open(String location) throws IOException {
    return Channels.newInputStream(FileSystems.open(file(location)));
  }

  /**
   * Writes a file that readers take as a whole (a manifest, a committed part), from {@code in}, and returns its
   * bytes: an object (one PUT), or a local file written beside it under a name of its own and renamed into place,
   * so that neither a reader, a crash nor a second writer of the same file (another attempt of a task) meets part
   * of it.
   */
  public static long replace(String location, InputStream in, String mimeType) throws IOException {
    if (isRemote(location)) {
      try (OutputStream out = create(location, mimeType)) {
        return in.transferTo(out);
      }
    }
    Path to = Path.of(location);
    Files.createDirectories(to.getParent());
    Path own = to.resolveSibling(to.getFileName() + ".writing-" + java.util.UUID.randomUUID());
    long bytes = Files.copy(in, own);
    Files.move(own, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    return bytes;
  }

  public static void write(String location, byte[] bytes, String mimeType) throws IOException {
    try (OutputStream out = create(location, mimeType)) {
      out.write(bytes);
    }
  }

  public static byte[] read(String location) throws IOException {
    try (InputStream in = open(location)) {
      return in.readAllBytes();
    }
  }

  /** Whether an object exists at {@code location}. */
  public static boolean exists(String location) throws IOException {
    MatchResult m = FileSystems.match(location, EmptyMatchTreatment.ALLOW);
    return m.status() == MatchResult.Status.OK && !m.metadata().isEmpty();
  }

  /** The objects whose names match {@code glob} ({@code *} within a "folder", {@code **} across them). */
  public static List<String> list(String glob) throws IOException {
    List<String> out = new ArrayList<>();
    MatchResult m = FileSystems.match(glob, EmptyMatchTreatment.ALLOW);
    if (m.status() == MatchResult.Status.NOT_FOUND) {
      return out;
    }
    for (MatchResult.Metadata md : m.metadata()) {
      out.add(md.resourceId().toString());
    }
    return out;
  }

  /** Deletes the objects named; those already gone are ignored. */
  public static void delete(List<String> locations) throws IOException {
    if (locations.isEmpty()) {
      return;
    }
    List<ResourceId> ids = new ArrayList<>();
    locations.forEach(l -> ids.add(file(l)));
    FileSystems.delete(ids, StandardMoveOptions.IGNORE_MISSING_FILES);
  }
}
