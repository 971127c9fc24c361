package org.fhirbeam.validation;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import org.fhirbeam.transforms.PrimitiveFormats;
import org.fhirbeam.transforms.UcumUnits;
import org.fhirbeam.validation.FhirValidation.Issue;
import org.fhirbeam.validation.FhirValidation.Severity;
import org.hl7.fhir.r4.fhirpath.ExpressionNode;
import org.hl7.fhir.r4.fhirpath.FHIRPathEngine;
import org.hl7.fhir.r4.model.Base;
import org.hl7.fhir.r4.model.BooleanType;
import org.hl7.fhir.r4.model.Property;
import org.hl7.fhir.r4.model.Resource;
import org.hl7.fhir.r5.model.ElementDefinition;
import org.hl7.fhir.r5.model.ElementDefinition.ElementDefinitionConstraintComponent;
import org.hl7.fhir.r5.model.ElementDefinition.TypeRefComponent;
import org.hl7.fhir.r5.model.Enumerations.BindingStrength;
import org.hl7.fhir.r5.model.PrimitiveType;
import org.hl7.fhir.r5.model.StructureDefinition;

/**
 * The compiled checks of {@code fhirbeam validate}: from the profiles' snapshots, and without HAPI's instance
 * validator, they decide the errors and warnings the validator would report for a resource, or decline it. A resource
 * they decline goes to the validator. They say a resource is clean only when they have proved every check the
 * validator would make on it, and report an issue only in the validator's own words (its message id, location and
 * text); {@code CompiledChecksTest} holds them to that on 19,900 resources, valid and defective, with the
 * validator as the oracle.
 *
 * <p>What they prove, against base R4, every profile in {@code meta.profile}, the profiles asked for, and the
 * profiles R4 implies (a vital sign's by its LOINC code, the loaded guides' global profiles): every element is
 * defined, with the array or single form its definition has, between its minimum and maximum; each choice element
 * is of an allowed type; primitive values have their type's format (dates with real days, codes, ids, URIs,
 * numbers in range, strings without edge whitespace or control characters, within {@code maxLength}); fixed and
 * pattern values hold; slices told apart by value, pattern or type have their cardinality, and a closed slicing no
 * other items; an extension is one the definitions have, used where its context allows, and meets its own
 * definition; codes bound required or extensible are in the value set (when it expands offline); a code of a code
 * system loaded with all its codes is one of them; a UCUM unit is valid UCUM; a reference's type is one its targets
 * allow; and every invariant of severity error or warning of every element is true, evaluated by HAPI's FHIRPath
 * engine (ele-1 is proved by the walk).
 *
 * <p>What they report: a concept of one coding outside the value set of an extensible binding (the validator's
 * warning {@code Terminology_TX_NoValid_2_CC}).
 *
 * <p>What they decline: modifier extensions, contained resources, narrative, primitive extensions
 * ({@code _birthDate}), references other than {@code Type/id}, codings of code systems neither loaded nor known to be
 * external terminologies, concepts of several codings under a binding, ordered slicing and other discriminators,
 * attachments and other types listed below, any other failing check, and resource types with checks of their own in
 * the validator (Bundle, Questionnaire, the conformance resources). Information issues (the validator's
 * best-practice notes) and codes it cannot check offline are not looked for: the validator reports them only for the
 * resources it checks.
 */
public final class CompiledChecks {
  /** A key twice in one object is an error to the validator's parser: here it declines (Jackson would keep one). */
  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
  private static final String BASE = "http://hl7.org/fhir/StructureDefinition/";
  private static final String BEST_PRACTICE = BASE + "elementdefinition-bestpractice";
  private static final String FHIR_TYPE = BASE + "structuredefinition-fhir-type";
  private static final String MAX_VALUE_SET = BASE + "elementdefinition-maxValueSet";
  private static final String NOT_IN_EXTENSIBLE = "Terminology_TX_NoValid_2_CC";

  /** Resource types whose every check the walk below covers (the validator has no special checks for them). */
  private static final Set<String> TYPES = Set.of("Patient", "Practitioner", "PractitionerRole", "Organization",
      "Location", "Encounter", "Condition", "Observation", "Procedure", "Immunization", "MedicationRequest",
      "MedicationAdministration", "MedicationStatement", "Medication", "AllergyIntolerance", "DiagnosticReport",
      "CarePlan", "CareTeam", "Goal", "Claim", "ExplanationOfBenefit", "Coverage", "Device", "ServiceRequest",
      "Specimen", "FamilyMemberHistory", "RelatedPerson", "ImagingStudy", "SupplyDelivery", "Basic");

  /** Elements and types it does not prove anything about (extensions, contained resources and narrative by type). */
  private static final Set<String> DECLINED_KEYS = Set.of("implicitRules");
  private static final Set<String> DECLINED_TYPES = Set.of("Narrative", "Attachment", "Signature",
      "Resource", "xhtml", "canonical", "base64Binary", "Expression", "DataRequirement", "TriggerDefinition",
      "ParameterDefinition", "RelatedArtifact", "UsageContext", "ContactDetail", "Contributor", "Dosage", "Timing",
      "SampledData", "MarketingStatus", "ProdCharacteristic", "ProductShelfLife", "Population",
      "SubstanceAmount", "Money", "Duration", "Age", "Distance", "Count");

  /**
   * External terminologies the validator cannot check offline: a code of one is reported as not checkable
   * (terminology-unavailable), never as an error or warning.
   */
  private static final Set<String> EXTERNAL_SYSTEMS = Set.of("http://snomed.info/sct", "http://loinc.org",
      "http://www.nlm.nih.gov/research/umls/rxnorm", "http://hl7.org/fhir/sid/cvx", "http://hl7.org/fhir/sid/ndc",
      "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10", "http://nucc.org/provider-taxonomy",
      "http://www.ama-assn.org/go/cpt");

  private static final Pattern URI = Pattern.compile(
      "https?://[A-Za-z0-9\\-._~:/?#\\[\\]@!$&'()*+,;=%]+|urn:oid:[0-2](\\.(0|[1-9][0-9]*))+"
          + "|urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  private static final Pattern OID = Pattern.compile("urn:oid:[0-2](\\.(0|[1-9][0-9]*))+");
  private static final Pattern UUID = Pattern.compile(
      "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  private static final Pattern REFERENCE = Pattern.compile("([A-Z][A-Za-z]+)/[A-Za-z0-9\\-.]{1,64}");
  /** A discriminator's path of element names ({@code coding.system}). */
  private static final Pattern ELEMENT_NAMES = Pattern.compile("[a-zA-Z]+(\\.[a-zA-Z]+)*");

  private final FhirValidation definitions;
  private final Map<String, Optional<Definition>> structures = new ConcurrentHashMap<>();
  private final Map<String, Optional<Expansion>> valueSets = new ConcurrentHashMap<>();
  private final Map<String, Optional<Set<String>>> codeSystems = new ConcurrentHashMap<>();
  private final ThreadLocal<Evaluator> evaluators;

  public CompiledChecks(FhirValidation definitions) {
    this.definitions = definitions;
    FhirContext ctx = definitions.context();
    this.evaluators = ThreadLocal.withInitial(() -> new Evaluator(ctx, definitions.newFhirPathEngine()));
  }

  /** Declining: the resource goes to the validator. Thrown without a stack trace, since it is common. */
  private static final class Decline extends RuntimeException {
    static final Decline INSTANCE = new Decline();

    private Decline() {
      super(null, null, false, false);
    }
  }

  private static void require(boolean holds) {
    if (!holds) {
      throw Decline.INSTANCE;
    }
  }

  /**
   * The errors and warnings the validator would report for {@code text} (a JSON resource) against base R4, its
   * {@code meta.profile}, {@code profiles} and the profiles R4 implies: what these checks found (today the warning of
   * a concept outside an extensible binding's value set), empty when they prove the resource clean; or null when they
   * decline, and the validator must check it. Information issues and codes not checkable offline are not given.
   */
  public List<Issue> check(String text, List<String> profiles) {
    try {
      JsonNode resource = JSON.readTree(text);
      require(resource != null && resource.isObject());
      JsonNode type = resource.get("resourceType");
      require(type != null && type.isTextual() && TYPES.contains(type.asText()));
      Walk walk = new Walk();
      walk.root.type = type.asText();
      walk.root.path = type.asText();
      for (String url : profilesOf(type.asText(), resource, profiles)) {
        Definition d = definition(url);
        require(d != null && d.structure.getType().equals(type.asText()));
        walk.children(d, id(d.root), resource, walk.root, true);
        walk.constraints(d.root, walk.root);
      }
      return evaluators.get().allTrue(text, walk.invariants) ? List.copyOf(walk.issues) : null;
    } catch (Decline | com.fasterxml.jackson.core.JsonProcessingException e) {
      return null;
    }
  }

  private List<String> profilesOf(String type, JsonNode resource, List<String> asked) {
    List<String> urls = new ArrayList<>();
    urls.add(BASE + type);
    JsonNode meta = resource.get("meta");
    JsonNode claimed = meta == null ? null : meta.get("profile");
    if (claimed != null) {
      require(claimed.isArray());
      for (JsonNode p : claimed) {
        require(p.isTextual() && !p.asText().contains("|"));
        urls.add(p.asText());
      }
    }
    urls.addAll(asked);
    urls.addAll(definitions.globalProfiles(type));
    if (type.equals("Observation") && resource.path("code").path("coding").isArray()) {
      for (JsonNode coding : resource.path("code").path("coding")) {
        if ("http://loinc.org".equals(coding.path("system").asText(null))) {
          String sign = FhirValidation.vitalSigns().get(coding.path("code").asText(""));
          if (sign != null) {
            urls.add(sign);
          }
        }
      }
    }
    return urls.stream().distinct().toList();
  }

  /**
   * A profile's snapshot, indexed by element id: each element's children (a slice's own below it), the slices of a
   * sliced element, and every element.
   */
  private record Definition(StructureDefinition structure, ElementDefinition root,
      Map<String, List<ElementDefinition>> children, Map<String, List<ElementDefinition>> slices,
      Map<String, ElementDefinition> byId) {}

  private static String id(ElementDefinition e) {
    return e.hasId() ? e.getId() : e.getPath();
  }

  private Definition definition(String url) {
    Optional<Definition> known = structures.get(url);
    if (known != null) {
      return known.orElse(null);
    }
    return structures.computeIfAbsent(url, u -> {
      StructureDefinition sd = definitions.profile(u);
      if (sd == null || !sd.hasSnapshot() || sd.getSnapshot().getElement().isEmpty()) {
        return Optional.empty();
      }
      Map<String, List<ElementDefinition>> children = new HashMap<>();
      Map<String, List<ElementDefinition>> slices = new HashMap<>();
      Map<String, ElementDefinition> byId = new HashMap<>();
      for (ElementDefinition e : sd.getSnapshot().getElement()) {
        String id = id(e);
        byId.put(id, e);
        int colon = id.lastIndexOf(':');
        int dot = id.lastIndexOf('.');
        if (colon > dot) {
          slices.computeIfAbsent(id.substring(0, colon), p -> new ArrayList<>()).add(e);
        } else if (dot > 0) {
          children.computeIfAbsent(id.substring(0, dot), p -> new ArrayList<>()).add(e);
        }
      }
      return Optional.of(new Definition(sd, sd.getSnapshot().getElement().get(0), children, slices, byId));
    }).orElse(null);
  }

  /**
   * What the walk asks of an element definition, worked out once per definition: the model's own accessors test
   * emptiness deeply on every call, which cost more than the walk itself.
   */
  private record Info(String id, String path, String name, String choicePrefix, List<TypeRefComponent> types,
      int min, int max, boolean repeats, boolean sliced, boolean contentReference, List<String> invariants,
      org.hl7.fhir.r5.model.DataType fixed, org.hl7.fhir.r5.model.DataType pattern,
      ElementDefinition.ElementDefinitionBindingComponent binding, int maxLength, boolean resourceId) {}

  /** By identity: an ElementDefinition does not override equals. */
  private final Map<ElementDefinition, Info> infos = new ConcurrentHashMap<>();

  private Info info(ElementDefinition e) {
    Info known = infos.get(e); // a plain read first: computeIfAbsent costs more when the key is there
    return known != null ? known : infos.computeIfAbsent(e, CompiledChecks::infoOf);
  }

  private static Info infoOf(ElementDefinition e) {
    String path = e.getPath();
    String name = path.substring(path.lastIndexOf('.') + 1);
    String baseMax = e.hasBase() && e.getBase().hasMax() ? e.getBase().getMax() : e.getMax();
    List<String> invariants = new ArrayList<>();
    for (ElementDefinitionConstraintComponent c : e.getConstraint()) {
      boolean bestPractice = c.getSeverity() != null && c.getSeverity().toCode().equals("warning")
          && c.hasExtension(BEST_PRACTICE);
      if (!c.getKey().equals("ele-1") && c.hasExpression() && !bestPractice) {
        invariants.add(c.getExpression());
      }
    }
    return new Info(id(e), path, name, name.endsWith("[x]") ? name.substring(0, name.length() - 3) : null,
        List.copyOf(e.getType()), e.getMin(), e.getMax().equals("*") ? Integer.MAX_VALUE
            : Integer.parseInt(e.getMax()), !baseMax.equals("1") && !baseMax.equals("0"), e.hasSlicing(),
        e.hasContentReference(), List.copyOf(invariants), e.hasFixed() ? e.getFixed() : null,
        e.hasPattern() ? e.getPattern() : null, e.hasBinding() ? e.getBinding() : null,
        e.hasMaxLength() ? e.getMaxLength() : Integer.MAX_VALUE,
        path.endsWith(".id") && path.indexOf('.') == path.length() - 3);
  }

  /** An element of the resource, found in HAPI's model only when an invariant is evaluated on it. */
  private static final class Node {
    final Node parent;
    final String key;
    final int index;
    Base base;
    /** The element's type and path in its definition (a resource's: its type), for an extension's context. */
    String type;
    String path;

    Node(Node parent, String key, int index) {
      this.parent = parent;
      this.key = key;
      this.index = index;
    }

    /** Its children, the same objects for every profile walked, and the invariants already asked of it. */
    private Map<String, Node> children;
    private Set<String> checked;

    Node child(String key, int index) {
      if (children == null) {
        children = new HashMap<>();
      }
      return children.computeIfAbsent(index < 0 ? key : key + "[" + index + "]", k -> new Node(this, key, index));
    }

    boolean firstTime(String expression) {
      if (checked == null) {
        checked = new HashSet<>();
      }
      return checked.add(expression);
    }

    String location() {
      return parent == null ? type : parent.location() + "." + key + (index < 0 ? "" : "[" + index + "]");
    }
  }

  private record Invariant(Node node, String expression) {}

  /** One resource's walk: what it proved so far, and the invariants left for the FHIRPath engine. */
  private final class Walk {
    final Node root = new Node(null, null, -1);
    final List<Invariant> invariants = new ArrayList<>();
    /** What the walk found that the validator reports too (each once, as the validator does). */
    final List<Issue> issues = new ArrayList<>();

    void issue(Issue i) {
      if (!issues.contains(i)) {
        issues.add(i);
      }
    }

    void constraints(ElementDefinition e, Node node) {
      for (String expression : info(e).invariants()) {
        if (node.firstTime(expression)) {
          invariants.add(new Invariant(node, expression));
        }
      }
    }

    /** The children of element {@code parent} (an id) of {@code d} in JSON object {@code json}: every key one. */
    void children(Definition d, String parent, JsonNode json, Node node, boolean resource) {
      require(json.isObject() && json.size() > (resource ? 1 : 0));
      List<ElementDefinition> kids = d.children.getOrDefault(parent, List.of());
      Set<String> matched = new HashSet<>();
      if (resource) {
        matched.add("resourceType");
      }
      for (ElementDefinition kid : kids) {
        Info k = info(kid);
        String name = k.name();
        require(!k.contentReference() || !json.has(name));
        String key = null;
        TypeRefComponent type = null;
        if (k.choicePrefix() != null) {
          String prefix = k.choicePrefix();
          for (TypeRefComponent t : k.types()) {
            String code = t.getWorkingCode();
            String candidate = prefix + Character.toUpperCase(code.charAt(0)) + code.substring(1);
            if (json.has(candidate)) {
              require(key == null);
              key = candidate;
              type = t;
            }
          }
          Iterator<String> names = json.fieldNames();
          while (names.hasNext()) {
            String n = names.next();
            require(!n.startsWith(prefix) || n.equals(key) || isOtherElement(n, kids));
          }
        } else {
          key = name;
          if (json.has(key)) {
            require(k.types().size() == 1);
            type = k.types().get(0);
          }
        }
        JsonNode value = key == null ? null : json.get(key);
        require(!DECLINED_KEYS.contains(name) || value == null);
        int count = value == null ? 0 : value.isArray() ? value.size() : 1;
        boolean repeats = k.repeats();
        if (value != null) {
          require(value.isArray() == repeats && count > 0);
        }
        require(count >= k.min() && count <= k.max());
        List<ElementDefinition> slices = d.slices.getOrDefault(k.id(), List.of());
        require(slices.isEmpty() || k.sliced());
        if (value == null) {
          for (ElementDefinition slice : slices) {
            require(info(slice).min() == 0);
          }
          continue;
        }
        matched.add(key);
        List<ElementDefinition> itemIn = slices.isEmpty() ? null : slicesOf(d, kid, slices, value, repeats, type);
        for (int i = 0; i < count; i++) {
          JsonNode item = repeats ? value.get(i) : value;
          ElementDefinition as = itemIn == null || itemIn.get(i) == null ? kid : itemIn.get(i);
          value(d, as, type, item, node.child(key, repeats ? i : -1));
        }
      }
      Iterator<String> names = json.fieldNames();
      while (names.hasNext()) {
        require(matched.contains(names.next()));
      }
    }

    /**
     * Which slice each item of a sliced element is (null: none, an open slicing's item), after checking each slice's
     * cardinality and that a closed slicing has no other items. Slices are told apart by discriminators of type value
     * or pattern (on element names, or {@code $this}) and of type type on {@code $this}; anything else declines, as
     * does an ordered slicing or an item that two slices match.
     */
    private List<ElementDefinition> slicesOf(Definition d, ElementDefinition sliced, List<ElementDefinition> slices,
        JsonNode value, boolean repeats, TypeRefComponent type) {
      var slicing = sliced.getSlicing();
      require(!slicing.getOrdered() && slicing.hasDiscriminator());
      List<JsonNode> items = new ArrayList<>();
      if (repeats) {
        value.forEach(items::add);
      } else {
        items.add(value);
      }
      List<ElementDefinition> itemIn = new ArrayList<>();
      int[] counts = new int[slices.size()];
      for (JsonNode item : items) {
        ElementDefinition in = null;
        for (int s = 0; s < slices.size(); s++) {
          if (isSlice(d, slices.get(s), slicing.getDiscriminator(), item, type)) {
            require(in == null);
            in = slices.get(s);
            counts[s]++;
          }
        }
        require(in != null || slicing.getRules() != ElementDefinition.SlicingRules.CLOSED);
        itemIn.add(in);
      }
      for (int s = 0; s < slices.size(); s++) {
        Info slice = info(slices.get(s));
        require(counts[s] >= slice.min() && counts[s] <= slice.max());
      }
      return itemIn;
    }

    private boolean isSlice(Definition d, ElementDefinition slice,
        List<ElementDefinition.ElementDefinitionSlicingDiscriminatorComponent> discriminators, JsonNode item,
        TypeRefComponent type) {
      for (var disc : discriminators) {
        String path = disc.getPath();
        switch (disc.getType()) {
          case TYPE -> {
            require(path.equals("$this"));
            if (slice.getType().stream().noneMatch(t -> t.getWorkingCode().equals(type.getWorkingCode()))) {
              return false;
            }
          }
          case VALUE, PATTERN -> {
            require(path.equals("$this") || ELEMENT_NAMES.matcher(path).matches());
            ElementDefinition at = path.equals("$this") ? slice : d.byId.get(id(slice) + "." + path);
            if (at == null && path.equals("url") && slice.getType().size() == 1
                && slice.getType().get(0).getWorkingCode().equals("Extension")
                && slice.getType().get(0).getProfile().size() == 1) {
              // An extension slice: its url is its profile's.
              if (!slice.getType().get(0).getProfile().get(0).getValue().equals(item.path("url").asText())) {
                return false;
              }
              continue;
            }
            Info where = at == null ? null : info(at);
            require(where != null && (where.fixed() != null || where.pattern() != null));
            org.hl7.fhir.r5.model.DataType wanted = where.fixed() != null ? where.fixed() : where.pattern();
            require(wanted instanceof PrimitiveType<?> || where.fixed() == null);
            List<JsonNode> values = new ArrayList<>();
            valuesAt(item, path.equals("$this") ? new String[0] : path.split("\\."), 0, values);
            if (values.stream().noneMatch(v -> matches(wanted, v))) {
              return false;
            }
          }
          default -> require(false);
        }
      }
      return true;
    }

    private static void valuesAt(JsonNode node, String[] names, int i, List<JsonNode> out) {
      if (node == null) {
        return;
      }
      if (node.isArray()) {
        node.forEach(n -> valuesAt(n, names, i, out));
      } else if (i == names.length) {
        out.add(node);
      } else {
        valuesAt(node.get(names[i]), names, i + 1, out);
      }
    }

    /** Whether an extension may be used on element {@code host}: a context of its definition names its type or path. */
    private static boolean inContext(StructureDefinition extension, Node host) {
      for (var c : extension.getContext()) {
        if (c.getType() != null && c.getType().toCode().equals("element")) {
          String x = c.getExpression();
          if (x.equals(host.type) || x.equals(host.path) || x.equals("Element")
              || (host.parent == null && (x.equals("Resource") || x.equals("DomainResource")))) {
            return true;
          }
        }
      }
      return false;
    }

    private static boolean isOtherElement(String key, List<ElementDefinition> kids) {
      for (ElementDefinition k : kids) {
        if (k.getPath().endsWith("." + key)) {
          return true;
        }
      }
      return false;
    }

    void value(Definition d, ElementDefinition e, TypeRefComponent type, JsonNode item, Node node) {
      require(item != null && !item.isNull());
      Info info = info(e);
      String code = type.getWorkingCode();
      // A canonical is proved in meta.profile only, where each one must be a loaded profile (profilesOf).
      require((!DECLINED_TYPES.contains(code) || info.path().equals("Meta.profile")) && !info.contentReference());
      constraints(e, node);
      if (info.resourceId()) {
        // A resource's id: the validator checks it has the id type's format, whatever its definition's type says.
        code = "id";
      } else if (code.startsWith("http://hl7.org/fhirpath/System.")) {
        String fhirType = type.getExtensionString(FHIR_TYPE);
        code = fhirType != null ? fhirType : info.path().endsWith(".id") ? "string" : null;
        require(code != null);
      }
      boolean primitive = Character.isLowerCase(code.charAt(0));
      node.type = code;
      node.path = info.path();
      if (info.fixed() != null) {
        require(info.fixed() instanceof PrimitiveType<?> p && primitive
            && p.asStringValue().equals(item.asText()) && item.isValueNode());
      }
      if (info.pattern() != null) {
        require(matches(info.pattern(), item));
      }
      if (primitive) {
        primitive(code, info, item);
        if (info.binding() != null) {
          binding(info.binding(), code, item, node);
        }
        return;
      }
      require(item.isObject() && item.size() > 0);
      if (code.equals("Reference")) {
        reference(type, item);
      }
      List<String> typeProfiles = type.getProfile().stream().map(PrimitiveType::getValue).toList();
      if (d.children.containsKey(info.id())) {
        require(typeProfiles.isEmpty());
        children(d, info.id(), item, node, false);
      } else {
        require(typeProfiles.size() <= 1);
        boolean extension = code.equals("Extension");
        // An extension is checked against its own definition: its slice's profile, or the one its url names (the
        // validator allows no extension it does not have).
        String url = !typeProfiles.isEmpty() ? typeProfiles.get(0) : extension ? item.path("url").asText(null)
            : BASE + code;
        require(url != null);
        Definition t = definition(url);
        require(t != null);
        if (extension) {
          require(!info.path().endsWith("modifierExtension") && t.structure.getType().equals("Extension")
              && url.equals(item.path("url").asText()) && inContext(t.structure, node.parent));
        }
        constraints(t.root, node);
        children(t, id(t.root), item, node, false);
      }
      switch (code) {
        case "Coding" -> coding(item);
        case "Quantity" -> quantity(item);
        default -> { }
      }
      if (info.binding() != null) {
        binding(info.binding(), code, item, node);
      }
    }

    private void primitive(String code, Info e, JsonNode v) {
      switch (code) {
        case "boolean" -> require(v.isBoolean());
        case "integer" -> require(v.isIntegralNumber() && v.canConvertToInt());
        case "positiveInt" -> require(v.isIntegralNumber() && v.canConvertToInt() && v.intValue() > 0);
        case "unsignedInt" -> require(v.isIntegralNumber() && v.canConvertToInt() && v.intValue() >= 0);
        case "decimal" -> require(v.isNumber() && v.asText().length() <= 18 && v.asText().indexOf('E') < 0
            && v.asText().indexOf('e') < 0);
        default -> {
          require(v.isTextual());
          String s = v.asText();
          require(!s.isEmpty() && s.length() <= 100_000 && s.length() <= e.maxLength());
          switch (code) {
            case "string", "markdown" -> require(s.strip().equals(s) && plainText(s, code.equals("markdown")));
            case "code" -> require(PrimitiveFormats.CODE_PATTERN.matcher(s).matches());
            case "id" -> require(PrimitiveFormats.ID_PATTERN.matcher(s).matches());
            case "uri", "url", "canonical" -> require(URI.matcher(s).matches() || code.equals("uri") && s.matches("[A-Za-z]+"));
            case "oid" -> require(OID.matcher(s).matches());
            case "uuid" -> require(UUID.matcher(s).matches());
            case "date" -> require(PrimitiveFormats.DATE_PATTERN.matcher(s).matches() && reasonableYear(s));
            case "dateTime" -> require(PrimitiveFormats.DATE_TIME_PATTERN.matcher(s).matches() && reasonableYear(s));
            case "instant" -> require(PrimitiveFormats.INSTANT_PATTERN.matcher(s).matches() && reasonableYear(s));
            case "time" -> require(PrimitiveFormats.TIME_PATTERN.matcher(s).matches());
            default -> require(false);
          }
        }
      }
    }

    private static boolean plainText(String s, boolean markdown) {
      for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i);
        if ((c < 32 && c != '\t' && c != '\n' && c != '\r') || (markdown && c == '<')) {
          return false;
        }
      }
      return true;
    }

    /** Years the validator takes without a warning that the date looks like a typing error. */
    private static boolean reasonableYear(String s) {
      int year = Integer.parseInt(s.substring(0, 4));
      return year >= 1900 && year < 2100;
    }

    private void reference(TypeRefComponent type, JsonNode item) {
      JsonNode ref = item.get("reference");
      if (ref == null) {
        return;
      }
      require(ref.isTextual());
      var m = REFERENCE.matcher(ref.asText());
      require(m.matches());
      if (type.getTargetProfile().isEmpty()) {
        return;
      }
      boolean allowed = false;
      for (var target : type.getTargetProfile()) {
        Definition t = definition(target.getValue());
        require(t != null);
        String targetType = t.structure.getType();
        allowed |= targetType.equals("Resource") || targetType.equals(m.group(1));
      }
      require(allowed);
    }

    /** A Coding wherever it is: its code system's own rules. */
    private void coding(JsonNode coding) {
      JsonNode system = coding.get("system");
      JsonNode code = coding.get("code");
      require(system != null && code != null && !coding.has("version"));
      String url = system.asText();
      if (url.equals(UcumUnits.SYSTEM)) {
        require(UcumUnits.error(code.asText()) == null && !coding.has("display"));
        return;
      }
      Set<String> codes = codeSystem(url);
      if (codes != null) {
        // A display other than the code system's is no error or warning to the validator here: it reports it as
        // a note of the terminology service (CompiledChecksTest's mutants change displays).
        require(codes.contains(code.asText()));
        return;
      }
      require(EXTERNAL_SYSTEMS.contains(url));
    }

    private void quantity(JsonNode quantity) {
      JsonNode system = quantity.get("system");
      JsonNode code = quantity.get("code");
      if (system == null && code == null) {
        return;
      }
      require(system != null && code != null && system.asText().equals(UcumUnits.SYSTEM)
          && UcumUnits.error(code.asText()) == null);
    }

    /** A binding of element {@code e} on a value of type {@code code}. */
    private void binding(ElementDefinition.ElementDefinitionBindingComponent b, String code, JsonNode item,
        Node node) {
      BindingStrength strength = b.getStrength();
      boolean checked = strength == BindingStrength.REQUIRED || strength == BindingStrength.EXTENSIBLE;
      if (!checked || !b.hasValueSet()) {
        return;
      }
      require(!b.hasExtension(MAX_VALUE_SET));
      Expansion expansion = valueSet(b.getValueSet());
      Set<String> codings = expansion == null ? null : expansion.codings();
      switch (code) {
        case "code", "string", "uri" -> require(expansion != null && expansion.codes().contains(item.asText()));
        case "Coding" -> {
          require(codings != null || strength == BindingStrength.EXTENSIBLE);
          require(codings == null || inValueSet(item, codings));
        }
        case "CodeableConcept" -> {
          // One coding: the validator's verdict on several (one in the value set, another not) is not the walk's.
          JsonNode list = item.get("coding");
          require(list != null && list.isArray() && list.size() == 1);
          if (codings == null) {
            require(strength == BindingStrength.EXTENSIBLE);
            return;
          }
          boolean any = false;
          for (JsonNode c : list) {
            any |= inValueSet(c, codings);
          }
          if (!any) {
            // The validator's warning for a concept outside an extensible binding's value set, as it words it.
            String valueSet = definitions.describeValueSet(b.getValueSet());
            require(strength == BindingStrength.EXTENSIBLE && valueSet != null);
            String codes = list.get(0).path("system").asText() + "#" + list.get(0).path("code").asText();
            issue(new Issue(Severity.WARNING, node.location(), NOT_IN_EXTENSIBLE,
                definitions.message(NOT_IN_EXTENSIBLE, valueSet, codes), Issue.CONTENT));
          }
        }
        default -> require(false);
      }
    }

    /**
     * Whether a coding is one of a value set's. Its display is not compared with the expansion's: the validator checks
     * a display against the code system, which {@link #coding} does when the system is loaded.
     */
    private static boolean inValueSet(JsonNode coding, Set<String> codings) {
      return codings.contains(coding.path("system").asText() + "|" + coding.path("code").asText());
    }
  }

  /** Whether JSON {@code item} holds every value of {@code pattern} (a pattern's match, as the validator has it). */
  private static boolean matches(org.hl7.fhir.r5.model.Base pattern, JsonNode item) {
    if (pattern instanceof PrimitiveType<?> p) {
      return item.isValueNode() && p.asStringValue().equals(item.asText());
    }
    if (!item.isObject()) {
      return false;
    }
    for (org.hl7.fhir.r5.model.Property prop : pattern.children()) {
      if (!prop.hasValues()) {
        continue;
      }
      JsonNode field = item.get(prop.getName());
      if (field == null || prop.getName().contains("[x]")) {
        return false;
      }
      for (org.hl7.fhir.r5.model.Base v : prop.getValues()) {
        boolean found = false;
        if (field.isArray()) {
          for (JsonNode f : field) {
            found |= matches(v, f);
          }
        } else {
          found = matches(v, field);
        }
        if (!found) {
          return false;
        }
      }
    }
    return true;
  }

  /** A value set's codings ({@code system|code}) and, for a code element, its codes alone. */
  private record Expansion(Set<String> codings, Set<String> codes) {}

  private Expansion valueSet(String url) {
    return valueSets.computeIfAbsent(url, u -> Optional.ofNullable(definitions.codingsOf(u))
        .map(codings -> new Expansion(codings, FhirValidation.codesOf(codings)))).orElse(null);
  }

  private Set<String> codeSystem(String url) {
    return codeSystems.computeIfAbsent(url, u -> Optional.ofNullable(definitions.codeSystemCodes(u)))
        .orElse(null);
  }

  /** A thread's FHIRPath engine and parser: the invariants are evaluated on HAPI's model of the resource. */
  private static final class Evaluator {
    final IParser parser;
    final FHIRPathEngine engine;
    final Map<String, ExpressionNode> parsed = new HashMap<>();

    Evaluator(FhirContext ctx, FHIRPathEngine engine) {
      this.parser = ctx.newJsonParser();
      this.engine = engine;
    }

    boolean allTrue(String text, List<Invariant> invariants) {
      if (invariants.isEmpty()) {
        return true;
      }
      Resource resource;
      try {
        resource = (Resource) parser.parseResource(text);
      } catch (RuntimeException e) {
        return false;
      }
      for (Invariant i : invariants) {
        try {
          Base focus = resolve(i.node(), resource);
          ExpressionNode expression = parsed.computeIfAbsent(i.expression(), engine::parse);
          List<Base> result = engine.evaluate(null, resource, resource, focus, expression);
          if (!(result.size() == 1 && result.get(0) instanceof BooleanType b && Boolean.TRUE.equals(b.getValue()))) {
            return false;
          }
        } catch (RuntimeException e) {
          return false;
        }
      }
      return true;
    }

    private static Base resolve(Node node, Resource resource) {
      if (node.base != null) {
        return node.base;
      }
      if (node.parent == null) {
        node.base = resource;
        return resource;
      }
      Property p = resolve(node.parent, resource).getNamedProperty(node.key);
      require(p != null && p.getValues().size() > Math.max(node.index, 0));
      node.base = p.getValues().get(Math.max(node.index, 0));
      return node.base;
    }
  }
}
