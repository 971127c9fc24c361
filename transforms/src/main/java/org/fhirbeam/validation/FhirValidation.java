package org.fhirbeam.validation;

import ca.uhn.fhir.context.FhirContext;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import org.hl7.fhir.common.hapi.validation.validator.WorkerContextValidationSupportAdapter;
import org.hl7.fhir.exceptions.FHIRException;
import org.hl7.fhir.r5.context.IWorkerContext;
import org.hl7.fhir.r5.elementmodel.Manager;
import org.hl7.fhir.r5.model.StructureDefinition;
import org.hl7.fhir.r5.utils.xver.XVerExtensionManagerOld;
import org.hl7.fhir.r5.utils.validation.ValidatorSession;
import org.hl7.fhir.r5.utils.validation.constants.BestPracticeWarningLevel;
import org.hl7.fhir.r5.utils.validation.constants.IdStatus;
import org.hl7.fhir.utilities.validation.ValidationMessage;
import org.hl7.fhir.validation.ValidatorSettings;
import org.hl7.fhir.validation.instance.InstanceValidator;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.parser.DataFormatException;
import ca.uhn.fhir.parser.IParser;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirDefaultPolicyAdvisor;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.Resource;
import org.hl7.fhir.utilities.npm.NpmPackage;

/**
 * HAPI's FHIR validator with R4's core definitions and the definitions of local implementation guides, working
 * offline: no terminology server is asked. Codes of code systems that are loaded (R4's own, those in the packages,
 * and the common ones HAPI knows: UCUM, languages, countries, currencies, MIME types) are checked for real; a code
 * from a system that is not available here (SNOMED CT, LOINC, RxNorm, ...) or a value set that cannot be expanded
 * here gives an issue of category {@link Issue#TERMINOLOGY_UNAVAILABLE}, counted apart and never an error.
 *
 * <p>Building one loads and indexes thousands of definitions (seconds), so one instance is shared per JVM and
 * per set of definitions ({@link #shared}); validating is thread-safe.
 */
public final class FhirValidation {
  /** One issue the validator found. */
  public record Issue(Severity severity, String location, String messageId, String message, String category) {
    /** The category of issues caused by terminology that cannot be reached offline. */
    public static final String TERMINOLOGY_UNAVAILABLE = "terminology-unavailable";
    /** Every other issue. */
    public static final String CONTENT = "content";
  }

  /** Issue severities, mildest first. */
  public enum Severity {
    INFORMATION, WARNING, ERROR, FATAL;

    public String code() {
      return name().toLowerCase(Locale.ROOT);
    }

    /** True for error and fatal: the resource is invalid. */
    public boolean isError() {
      return this == ERROR || this == FATAL;
    }
  }

  /** Definitions may hold elements of later FHIR versions; the parser skips them without a log line each. */
  private static final ca.uhn.fhir.parser.LenientErrorHandler QUIET = new ca.uhn.fhir.parser.LenientErrorHandler(false);

  private static final Map<List<Path>, FhirValidation> SHARED = new ConcurrentHashMap<>();

  /**
   * Message ids of issues that mean a code could not be checked here: a code system that is not loaded, a value
   * set that cannot be expanded offline, or HAPI failing on a code system it lacks. docs/VALIDATION.md lists them.
   */
  private static final Set<String> TERMINOLOGY_MESSAGE_IDS = Set.of(
      "Terminology_PassThrough_TX_Message", "Terminology_TX_System_NotKnown", "TERMINOLOGY_TX_SYSTEM_NOTKNOWN",
      "UNKNOWN_CODESYSTEM", "UNKNOWN_CODESYSTEM_VERSION", "Terminology_TX_ValueSet_NotFound",
      "Terminology_TX_Error_CodeableConcept", "Terminology_TX_Error_Coding1", "Terminology_TX_Error_Coding2");

  /**
   * Message ids of "the code is not in the value set" issues: they mean the terminology is unavailable when the
   * value set named in the message cannot be expanded offline, and are content issues when it can.
   */
  private static final Set<String> NOT_IN_VALUE_SET_IDS = Set.of("Terminology_TX_NoValid_1_CC",
      "Terminology_TX_NoValid_2_CC", "Terminology_TX_NoValid_3_CC", "Terminology_TX_NoValid_16",
      "Terminology_TX_NoValid_17", "Terminology_TX_NoValid_18", "Terminology_TX_NoValid_10",
      "Terminology_TX_NoValid_11", "Terminology_TX_NoValid_12", "Terminology_TX_NoValid_9");

  /** "The value provided is not in the value set" of a primitive value, for extensible and preferred bindings. */
  private static final Set<String> PRIMITIVE_NOT_REQUIRED_IDS = Set.of("Terminology_TX_NoValid_17",
      "Terminology_TX_NoValid_18");

  private static final java.util.regex.Pattern VALUE_SET_URL =
      java.util.regex.Pattern.compile("\\((https?://[^|)\\s]+)(?:\\|[^)]*)?\\)");

  /** Bindings without a value set: HAPI's validator hides these notes too. */
  private static final Set<String> HIDDEN_MESSAGE_IDS = Set.of("Terminology_TX_Binding_NoSource",
      "Terminology_TX_Binding_NoSource2");

  private final FhirContext context;
  private final IWorkerContext worker;
  private final IValidationSupport support;
  private final Map<String, List<String>> globalProfiles;
  private final Map<String, Boolean> expandable = new ConcurrentHashMap<>();
  private final List<Path> definitions;
  private final int loadedResources;
  private volatile double buildSeconds;
  private volatile double loadSeconds;
  private boolean warmedUp;
  /**
   * HAPI's FhirValidator builds a new InstanceValidator for every resource, and each one loads an OID table from
   * a CSV file: over half the time of validating a small resource. One instance per thread, reused, gives the
   * same issues (ValidatorCasesTest and the Synthea checks run on this path).
   */
  private final ThreadLocal<Reused> validators;

  /**
   * A thread's instance validator and how often it has been used. The HL7 validator keeps a map of narrative
   * elements it has seen and never clears it, so a reused instance is replaced after {@link #REUSES} resources to
   * keep memory flat.
   */
  private static final class Reused {
    InstanceValidator validator;
    int uses;
  }

  private static final int REUSES = 1_000;

  /** Validation is CPU-bound and thread-safe: one pool per JVM, one daemon thread per core. */
  private static final ExecutorService POOL = Executors.newFixedThreadPool(
      Runtime.getRuntime().availableProcessors(), r -> {
        Thread t = new Thread(r, "fhirbeam-validate");
        t.setDaemon(true);
        return t;
      });

  private FhirValidation(FhirContext context, IValidationSupport support, List<Path> definitions, int loaded,
      Map<String, List<String>> globalProfiles) {
    this.context = context;
    this.globalProfiles = Map.copyOf(globalProfiles);
    this.support = support;
    this.worker = WorkerContextValidationSupportAdapter.newVersionSpecificWorkerContextWrapper(support);
    this.definitions = definitions;
    this.loadedResources = loaded;
    this.validators = ThreadLocal.withInitial(Reused::new);
  }

  private InstanceValidator newInstanceValidator() {
    InstanceValidator v = new InstanceValidator(worker, new FhirInstanceValidator.NullEvaluationContext(),
        new XVerExtensionManagerOld(worker), new ValidatorSession(), new ValidatorSettings());
    v.setResourceIdRule(IdStatus.OPTIONAL);
    // Best-practice recommendations (narrative, an Observation's performer) are information, not warnings, so
    // reject_on: warning rejects resources with real warnings only.
    v.setBestPracticeWarningLevel(BestPracticeWarningLevel.Hint);
    // As the HL7 validator: an extension must be defined somewhere loaded (a typo in a url is an error), except
    // under FHIR's own extension namespace (other versions' extensions, the extensions pack) and FHIR's example
    // domain; a profile named in meta.profile that is not loaded is a warning, not an error.
    v.setAnyExtensionsAllowed(false);
    v.getExtensionDomains().addAll(List.of("http://hl7.org/fhir/StructureDefinition/", "http://example.org/"));
    v.setErrorForUnknownProfiles(false);
    // HAPI keeps this on and lets UnknownCodeSystemWarningValidationSupport decide the severity.
    v.setUnknownCodeSystemsCauseErrors(true);
    v.setAllowXsiLocation(true);
    // HAPI's default policies (references are not resolved: there is no server to resolve them against), plus
    // the profiles FHIR itself implies for a resource.
    v.setPolicyAdvisor(new ImpliedProfiles());
    return v;
  }

  /**
   * The definitions of R4 plus {@code definitions} (see {@link #build}), loaded on first use and shared by every
   * caller in this JVM, without the validator's warm-up: enough for {@link #profile} and {@link #codesOf}.
   */
  public static FhirValidation definitions(List<Path> definitions) {
    List<Path> key = definitions.stream().map(p -> p.toAbsolutePath().normalize()).toList();
    return SHARED.computeIfAbsent(key, FhirValidation::create);
  }

  /** The validator for these definitions, built and warmed up on first use and shared by every caller in this JVM. */
  public static FhirValidation shared(List<Path> definitions) {
    FhirValidation v = definitions(definitions);
    v.warmUp();
    return v;
  }

  /** Seconds spent building this validator and warming it up (loading definitions, the first validation). */
  public double buildSeconds() {
    return buildSeconds;
  }

  /** Seconds spent loading the definitions (no validator built). */
  public double loadSeconds() {
    return loadSeconds;
  }

  /**
   * Builds a validator with R4's core definitions plus {@code definitions}: FHIR NPM packages ({@code .tgz}),
   * single conformance resources (JSON or XML: StructureDefinition, ValueSet, CodeSystem, ...), or folders of
   * either. A file that cannot be read or parsed is an {@link IllegalArgumentException} naming it.
   */
  public static FhirValidation build(List<Path> definitions) {
    FhirValidation v = create(definitions);
    v.warmUp();
    return v;
  }

  /**
   * The first validation loads and indexes R4's definitions; done once, it stays out of the per-resource time. A
   * validator that fails it would fail on every resource and reject them all, so that is an exception.
   */
  private synchronized void warmUp() {
    if (warmedUp) {
      return;
    }
    long start = System.nanoTime();
    List<Issue> warmUp = validate("{\"resourceType\":\"Basic\",\"code\":{\"text\":\"warm-up\"}}", List.of());
    if (warmUp.stream().anyMatch(i -> i.severity().isError())) {
      throw new IllegalStateException("the FHIR validator does not work with these definitions: "
          + warmUp.stream().filter(i -> i.severity().isError()).map(Issue::message).toList());
    }
    buildSeconds = loadSeconds + (System.nanoTime() - start) / 1e9;
    warmedUp = true;
  }

  private static FhirValidation create(List<Path> definitions) {
    long start = System.nanoTime();
    FhirContext ctx = FhirContext.forR4Cached();
    LocalDefinitions local = new LocalDefinitions(ctx);
    int loaded = 0;
    for (Path p : definitions) {
      loaded += load(ctx, local, p);
    }
    UnknownCodeSystemWarningValidationSupport unknownSystems = new UnknownCodeSystemWarningValidationSupport(ctx);
    unknownSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain = new ValidationSupportChain(
        new DefaultProfileValidationSupport(ctx),
        local,
        new EnumeratedValueSets(ctx),
        new CommonCodeSystemsTerminologyService(ctx),
        new InMemoryTerminologyServerValidationSupport(ctx),
        new SnapshotGeneratingValidationSupport(ctx),
        unknownSystems);
    FhirValidation v = new FhirValidation(ctx, chain, List.copyOf(definitions), loaded, local.globals);
    v.loadSeconds = (System.nanoTime() - start) / 1e9;
    return v;
  }

  private static int load(FhirContext ctx, LocalDefinitions into, Path path) {
    try {
      if (Files.isDirectory(path)) {
        int n = 0;
        List<Path> files;
        try (Stream<Path> s = Files.list(path)) {
          files = s.filter(f -> isDefinitionFile(f)).sorted().toList();
        }
        for (Path f : files) {
          n += load(ctx, into, f);
        }
        return n;
      }
      String name = path.getFileName().toString().toLowerCase(Locale.ROOT);
      if (name.endsWith(".tgz") || name.endsWith(".tar.gz")) {
        return loadPackage(ctx, into, path);
      }
      String text = withoutByteOrderMark(Files.readString(path));
      IParser parser = text.stripLeading().startsWith("<") ? ctx.newXmlParser() : ctx.newJsonParser();
      parser.setParserErrorHandler(QUIET);
      IBaseResource r = parser.parseResource(text);
      return add(into, r);
    } catch (IOException | RuntimeException e) {
      if (e instanceof IllegalArgumentException already && already.getMessage().startsWith("cannot load")) {
        throw already;
      }
      throw new IllegalArgumentException("cannot load FHIR definitions from " + path + ": " + e.getMessage(), e);
    }
  }

  /** The canonical URL of a StructureDefinition file (JSON or XML); an IllegalArgumentException if it is not one. */
  public static String profileUrl(Path file) {
    try {
      String text = withoutByteOrderMark(Files.readString(file));
      FhirContext ctx = FhirContext.forR4Cached();
      IParser parser = text.stripLeading().startsWith("<") ? ctx.newXmlParser() : ctx.newJsonParser();
      parser.setParserErrorHandler(QUIET);
      if (parser.parseResource(text) instanceof org.hl7.fhir.r4.model.StructureDefinition sd && sd.hasUrl()) {
        return sd.getUrl();
      }
      throw new IllegalArgumentException(file + " is not a StructureDefinition with a url");
    } catch (IOException | DataFormatException e) {
      throw new IllegalArgumentException(file + " is not a readable FHIR StructureDefinition: " + e.getMessage(), e);
    }
  }

  private static boolean isDefinitionFile(Path f) {
    String n = f.getFileName().toString().toLowerCase(Locale.ROOT);
    // An unpacked package's own files (package.json, .index.json) are not conformance resources.
    return Files.isRegularFile(f) && !n.startsWith(".") && !n.equals("package.json")
        && (n.endsWith(".json") || n.endsWith(".xml") || n.endsWith(".tgz"));
  }

  private static int loadPackage(FhirContext ctx, LocalDefinitions into, Path path) throws IOException {
    NpmPackage pkg;
    try (InputStream in = Files.newInputStream(path)) {
      pkg = NpmPackage.fromPackage(in);
    }
    if (pkg.fhirVersion() != null && !pkg.fhirVersion().startsWith("4.0")) {
      throw new IllegalArgumentException("package " + pkg.name() + "#" + pkg.version() + " in " + path
          + " is for FHIR " + pkg.fhirVersion() + ", not R4 (4.0.x)");
    }
    IParser parser = ctx.newJsonParser();
    parser.setParserErrorHandler(QUIET);
    int n = 0;
    for (String file : pkg.listResources("StructureDefinition", "ValueSet", "CodeSystem")) {
      try (InputStream in = pkg.loadResource(file)) {
        n += add(into, parser.parseResource(in));
      }
    }
    return n;
  }

  private static int add(LocalDefinitions into, IBaseResource r) {
    if (r instanceof Bundle b) {
      int n = 0;
      for (Bundle.BundleEntryComponent e : b.getEntry()) {
        if (e.getResource() != null) {
          n += add(into, e.getResource());
        }
      }
      return n;
    }
    String type = ((Resource) r).fhirType();
    switch (type) {
      case "StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter" -> into.addResource(r);
      case "Questionnaire", "ConceptMap", "ImplementationGuide", "NamingSystem" -> into.addOther((Resource) r);
      default -> {
        return 0;
      }
    }
    return 1;
  }

  /**
   * The loaded definitions. HAPI's pre-populated support answers for profiles, value sets and code systems; the
   * validator also looks up other conformance resources by canonical url (a QuestionnaireResponse's
   * Questionnaire), which this class answers too.
   */
  private static final class LocalDefinitions extends PrePopulatedValidationSupport {
    private final Map<String, Resource> others = new ConcurrentHashMap<>();

    LocalDefinitions(FhirContext ctx) {
      super(ctx);
    }

    /** Resource type to the global profiles of the loaded implementation guides. */
    final Map<String, List<String>> globals = new ConcurrentHashMap<>();

    void addOther(Resource r) {
      if (r instanceof org.hl7.fhir.r4.model.ImplementationGuide ig) {
        for (org.hl7.fhir.r4.model.ImplementationGuide.ImplementationGuideGlobalComponent g : ig.getGlobal()) {
          globals.computeIfAbsent(g.getType(), t -> new java.util.concurrent.CopyOnWriteArrayList<>())
              .add(g.getProfile());
        }
      }
      if (r instanceof org.hl7.fhir.r4.model.MetadataResource m && m.hasUrl()) {
        others.put(m.getUrl(), r);
        if (m.hasVersion()) {
          others.put(m.getUrl() + "|" + m.getVersion(), r);
        }
      }
    }

    @Override
    public <T extends IBaseResource> T fetchResource(Class<T> type, String url) {
      Resource r = others.get(url);
      if (r != null && (type == null || type.isInstance(r))) {
        return type == null ? null : type.cast(r);
      }
      return super.fetchResource(type, url);
    }
  }

  /**
   * FHIR's rules for profiles a resource must meet without naming them: an Observation with one of the vital-sign
   * LOINC codes of R4's vital signs table meets that sign's profile (spec, observation-vitalsigns), and every
   * resource meets the {@code global} profiles for its type of the implementation guides loaded here.
   */
  private final class ImpliedProfiles extends FhirDefaultPolicyAdvisor {
    @Override
    public List<StructureDefinition> getImpliedProfilesForResource(
        org.hl7.fhir.r5.utils.validation.IResourceValidator validator, Object appContext, String stackPath,
        org.hl7.fhir.r5.model.ElementDefinition definition, StructureDefinition structure,
        org.hl7.fhir.r5.elementmodel.Element resource, boolean valid,
        org.hl7.fhir.r5.utils.validation.IMessagingServices msgServices, List<ValidationMessage> messages) {
      List<String> urls = new ArrayList<>(globalProfiles.getOrDefault(resource.fhirType(), List.of()));
      if (resource.fhirType().equals("Observation")) {
        org.hl7.fhir.r5.elementmodel.Element code = resource.getNamedChild("code");
        if (code != null) {
          for (org.hl7.fhir.r5.elementmodel.Element coding : code.getChildren("coding")) {
            if ("http://loinc.org".equals(coding.getNamedChildValue("system"))) {
              String profile = VITAL_SIGNS.get(coding.getNamedChildValue("code"));
              if (profile != null && !urls.contains(profile)) {
                urls.add(profile);
              }
            }
          }
        }
      }
      List<StructureDefinition> out = new ArrayList<>();
      for (String url : urls) {
        StructureDefinition sd = worker.fetchResource(StructureDefinition.class, url);
        if (sd != null) {
          out.add(sd);
        }
      }
      return out;
    }
  }

  /** R4's vital signs table: LOINC code to the profile an Observation with it must meet. */
  private static final Map<String, String> VITAL_SIGNS = Map.ofEntries(
      Map.entry("85353-1", "vitalspanel"), Map.entry("9279-1", "resprate"), Map.entry("8867-4", "heartrate"),
      Map.entry("2708-6", "oxygensat"), Map.entry("59408-5", "oxygensat"), Map.entry("8310-5", "bodytemp"),
      Map.entry("8302-2", "bodyheight"), Map.entry("9843-4", "headcircum"), Map.entry("29463-7", "bodyweight"),
      Map.entry("39156-5", "bmi"), Map.entry("85354-9", "bp"))
      .entrySet().stream().collect(java.util.stream.Collectors.toUnmodifiableMap(Map.Entry::getKey,
          e -> "http://hl7.org/fhir/StructureDefinition/" + e.getValue()));

  /** R4's vital signs table: an Observation with one of these LOINC codes must meet the profile (url) it gives. */
  public static Map<String, String> vitalSigns() {
    return VITAL_SIGNS;
  }

  private static final java.util.regex.Pattern UNKNOWN_CODE =
      java.util.regex.Pattern.compile("Unknown code ['\"]([^'\"#]+)#");

  /** Whether a message says a code is unknown in a code system that is not loaded here with all its codes. */
  private boolean unknownCodeOfMissingSystem(String message) {
    java.util.regex.Matcher m = UNKNOWN_CODE.matcher(message == null ? "" : message);
    if (!m.find()) {
      return false;
    }
    IBaseResource cs = support.fetchCodeSystem(m.group(1));
    return !(cs instanceof org.hl7.fhir.r4.model.CodeSystem c)
        || c.getContent() != org.hl7.fhir.r4.model.CodeSystem.CodeSystemContentMode.COMPLETE;
  }

  /**
   * Validates several resources at once, one per core, and returns their issues in the same order. The same
   * {@code profiles} apply to every resource.
   */
  public List<List<Issue>> validateAll(List<String> resources, List<String> profiles) {
    List<Future<List<Issue>>> futures = new ArrayList<>();
    for (String r : resources) {
      futures.add(POOL.submit(() -> validate(r, profiles)));
    }
    return all(futures);
  }

  /** A resource's errors and warnings (and, from the validator, the rest), and whether the compiled checks gave them. */
  public record Verdict(List<Issue> issues, boolean compiled) {}

  /**
   * As {@link #validateAll(List, List)}, but the compiled checks ({@link CompiledChecks}) decide each resource they
   * can; the validator checks the others.
   */
  public List<Verdict> checkAll(List<String> resources, List<String> profiles, CompiledChecks compiled) {
    List<Future<Verdict>> futures = new ArrayList<>();
    for (String r : resources) {
      futures.add(POOL.submit(() -> {
        List<Issue> found = compiled.check(r, profiles);
        return found != null ? new Verdict(found, true) : new Verdict(validate(r, profiles), false);
      }));
    }
    return all(futures);
  }

  private static <T> List<T> all(List<Future<T>> futures) {
    List<T> results = new ArrayList<>();
    try {
      for (Future<T> f : futures) {
        results.add(f.get());
      }
    } catch (InterruptedException e) {
      futures.forEach(f -> f.cancel(true));
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while validating", e);
    } catch (ExecutionException e) {
      throw new IllegalStateException("validation failed: " + e.getCause().getClass().getSimpleName(), e.getCause());
    }
    return results;
  }

  /**
   * The codes of value set {@code url} (a version after {@code |} is ignored), expanded from R4's and the loaded
   * definitions; null when it cannot be expanded here (a filter over SNOMED CT, say).
   */
  public Set<String> codesOf(String url) {
    Set<String> codings = codingsOf(url);
    return codings == null ? null : codesOf(codings);
  }

  /** The codes of {@link #codingsOf}'s {@code system|code} codings (a system has no {@code |}: it ends a url). */
  public static Set<String> codesOf(Set<String> codings) {
    Set<String> codes = new java.util.TreeSet<>();
    codings.forEach(c -> codes.add(c.substring(c.indexOf('|') + 1)));
    return codes;
  }

  /**
   * The codings of value set {@code url} (a version after {@code |} is ignored) as {@code system|code}; null when it
   * cannot be expanded here.
   */
  public Set<String> codingsOf(String url) {
    String plain = url.contains("|") ? url.substring(0, url.indexOf('|')) : url;
    if (!(expansion(plain) instanceof org.hl7.fhir.r4.model.ValueSet expanded)) {
      return null;
    }
    Set<String> codings = new HashSet<>();
    addCodings(expanded.getExpansion().getContains(), codings);
    return codings;
  }

  private static void addCodings(List<org.hl7.fhir.r4.model.ValueSet.ValueSetExpansionContainsComponent> contains,
      Set<String> into) {
    for (org.hl7.fhir.r4.model.ValueSet.ValueSetExpansionContainsComponent c : contains) {
      if (c.hasCode()) {
        into.add(c.getSystem() + "|" + c.getCode());
      }
      addCodings(c.getContains(), into);
    }
  }

  /**
   * The validator's message {@code id} with {@code args}, in its own words ({@code Terminology_TX_NoValid_2_CC}
   * and a value set's {@link #describeValueSet description}).
   */
  public String message(String id, Object... args) {
    return worker.formatMessage(id, args);
  }

  /** A value set as the validator names it in messages: {@code 'title' (url|version)}; null when not loaded. */
  public String describeValueSet(String url) {
    org.hl7.fhir.r5.model.ValueSet vs = worker.fetchResource(org.hl7.fhir.r5.model.ValueSet.class, url);
    return vs == null ? null : "'" + vs.present() + "' (" + vs.getVersionedUrl() + ")";
  }

  /**
   * A FHIRPath engine of HAPI's R4 model on these definitions (one per thread: it keeps state while it evaluates). On
   * the same definitions, so they are loaded once: one on the context's default support would load R4's again.
   */
  public org.hl7.fhir.r4.fhirpath.FHIRPathEngine newFhirPathEngine() {
    return new org.hl7.fhir.r4.fhirpath.FHIRPathEngine(new org.hl7.fhir.r4.hapi.ctx.HapiWorkerContext(context, support));
  }

  /** The global profiles of the loaded implementation guides for resources of {@code type}. */
  public List<String> globalProfiles(String type) {
    return globalProfiles.getOrDefault(type, List.of());
  }

  /**
   * The codes of code system {@code url} when it is loaded with all its codes (R4's own, or a package's with content
   * {@code complete}): a Coding of it with another code is an error wherever it is. Null otherwise.
   */
  public Set<String> codeSystemCodes(String url) {
    IBaseResource cs;
    try {
      cs = support.fetchCodeSystem(url);
    } catch (RuntimeException e) {
      return null;
    }
    if (!(cs instanceof org.hl7.fhir.r4.model.CodeSystem c)
        || c.getContent() != org.hl7.fhir.r4.model.CodeSystem.CodeSystemContentMode.COMPLETE) {
      return null;
    }
    Set<String> codes = new java.util.TreeSet<>();
    addConcepts(c.getConcept(), codes);
    return codes;
  }

  private static void addConcepts(List<org.hl7.fhir.r4.model.CodeSystem.ConceptDefinitionComponent> concepts,
      Set<String> into) {
    for (org.hl7.fhir.r4.model.CodeSystem.ConceptDefinitionComponent c : concepts) {
      into.add(c.getCode());
      addConcepts(c.getConcept(), into);
    }
  }

  /** Value set {@code url} expanded from what is loaded; null when it cannot be expanded here. */
  private org.hl7.fhir.instance.model.api.IBaseResource expansion(String url) {
    try {
      IValidationSupport.ValueSetExpansionOutcome outcome = support.expandValueSet(
          new ca.uhn.fhir.context.support.ValidationSupportContext(support), null, url);
      return outcome == null || outcome.getError() != null ? null : outcome.getValueSet();
    } catch (RuntimeException e) {
      return null;
    }
  }

  /** Whether the value set a message names can be expanded from what is loaded (remembered per url). */
  private boolean expandableValueSetIn(String message) {
    java.util.regex.Matcher m = VALUE_SET_URL.matcher(message == null ? "" : message);
    if (!m.find()) {
      return false;
    }
    return expandable.computeIfAbsent(m.group(1), url -> expansion(url) != null);
  }

  private static String withoutByteOrderMark(String text) {
    return text.startsWith("\uFEFF") ? text.substring(1) : text;
  }

  /** How many conformance resources the given definitions added to R4's own. */
  public int loadedResources() {
    return loadedResources;
  }

  public List<Path> definitions() {
    return definitions;
  }

  public FhirContext context() {
    return context;
  }

  /**
   * A FHIRPath expression as HAPI's engine parses it (for invariants); a bad one is a FHIRException. Parsing needs no
   * definitions, so the engine works on an empty context: one on the validator's would convert all of R4's
   * StructureDefinitions first (2 s).
   */
  public static org.hl7.fhir.r5.fhirpath.ExpressionNode fhirPath(String expression) {
    return Parser.ENGINE.parse(expression);
  }

  private static final class Parser {
    static final org.hl7.fhir.r5.fhirpath.FHIRPathEngine ENGINE;

    static {
      try {
        ENGINE = new org.hl7.fhir.r5.fhirpath.FHIRPathEngine(
            new org.hl7.fhir.r5.context.SimpleWorkerContext.SimpleWorkerContextBuilder().fromNothing());
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }
  }

  /** The profile of canonical url {@code url} among R4's and the loaded definitions, with its snapshot; null if none. */
  public StructureDefinition profile(String url) {
    return worker.fetchResource(StructureDefinition.class, url);
  }

  /**
   * Validates one resource (JSON or XML text) against base R4, the profiles in its {@code meta.profile}, and
   * {@code profiles}. Text that cannot be parsed gives a fatal issue, not an exception.
   */
  public List<Issue> validate(String resource, List<String> profiles) {
    String text = withoutByteOrderMark(resource);
    List<StructureDefinition> explicit = new ArrayList<>();
    List<Issue> issues = new ArrayList<>();
    for (String url : profiles) {
      StructureDefinition sd = worker.fetchResource(StructureDefinition.class, url);
      if (sd == null) {
        issues.add(new Issue(Severity.ERROR, "", "Validation_VAL_Profile_Unknown",
            "the profile " + url + " is not loaded (add its package or file)", Issue.CONTENT));
      } else {
        explicit.add(sd);
      }
    }
    Manager.FhirFormat format = text.stripLeading().startsWith("<") ? Manager.FhirFormat.XML : Manager.FhirFormat.JSON;
    List<ValidationMessage> messages = new ArrayList<>();
    try {
      Reused mine = validators.get();
      if (mine.validator == null || mine.uses++ >= REUSES) {
        mine.validator = newInstanceValidator();
        mine.uses = 1;
      }
      mine.validator.validate(null, messages, new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8)),
          format, explicit);
    } catch (FHIRException e) {
      issues.add(new Issue(Severity.FATAL, "", "PARSE", "not valid FHIR " + format + ": " + e.getMessage(),
          Issue.CONTENT));
    } catch (RuntimeException e) {
      // A validator failure on one odd resource is that resource's problem, not the run's; the instance that
      // failed is not reused.
      validators.get().validator = null;
      issues.add(new Issue(Severity.FATAL, "", "VALIDATOR_FAILED", "the validator failed on this resource: "
          + e.getClass().getSimpleName(), Issue.CONTENT));
    }
    // Where the validator judged a primitive value (a string or code, not a Coding) outside a binding that is not
    // required (extensible, preferred): there the terminology service's own error about the value (passed through)
    // is the same finding, no more than a warning. An unknown code of a Coding stays an error.
    Set<String> notRequired = new HashSet<>();
    for (ValidationMessage m : messages) {
      if (m.getMessageId() != null && PRIMITIVE_NOT_REQUIRED_IDS.contains(m.getMessageId())) {
        notRequired.add(m.getLocation());
      }
    }
    for (ValidationMessage m : messages) {
      Severity severity = switch (m.getLevel()) {
        case INFORMATION, NULL -> Severity.INFORMATION;
        case WARNING -> Severity.WARNING;
        case ERROR -> Severity.ERROR;
        case FATAL -> Severity.FATAL;
      };
      String id = m.getMessageId() == null ? "" : m.getMessageId();
      if (HIDDEN_MESSAGE_IDS.contains(id)) {
        continue;
      }
      String category = Issue.CONTENT;
      if (!severity.isError() && (TERMINOLOGY_MESSAGE_IDS.contains(id)
          || (NOT_IN_VALUE_SET_IDS.contains(id) && !expandableValueSetIn(m.getMessage())))) {
        category = Issue.TERMINOLOGY_UNAVAILABLE;
      } else if (severity.isError() && TERMINOLOGY_MESSAGE_IDS.contains(id) && unknownCodeOfMissingSystem(m.getMessage())) {
        // "Unknown code" from a code system whose codes are not loaded here: not checkable offline, not an error.
        category = Issue.TERMINOLOGY_UNAVAILABLE;
        severity = Severity.WARNING;
      } else if (severity.isError() && id.equals("Terminology_PassThrough_TX_Message")
          && notRequired.contains(m.getLocation())) {
        severity = Severity.WARNING;
      }
      issues.add(new Issue(severity, m.getLocation(), id, m.getMessage(), category));
    }
    return issues;
  }
}
