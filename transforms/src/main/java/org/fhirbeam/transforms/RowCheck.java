package org.fhirbeam.transforms;

import java.io.Serializable;
import java.util.List;

/**
 * A check of a profile that only the row can decide, found by {@link ProfileConformance} and evaluated by the
 * mapping's query ({@link SqlMapping}): a required element the mapping writes only when a column has a value, a
 * forbidden one it writes when a column has a value, a code it copies from the row into an element with a required
 * binding. A row that fails one is rejected (stage {@code validation}) with the location, message id and message
 * HAPI's validator gives for the resource the row would have made.
 *
 * <p>Elements are named by the keys of the mapping's paths, one per level: {@code identifier[0]},
 * {@code extension[http://...]}, {@code gender[0]} (an element without an index is its first repetition).
 *
 * @param at the element instance the check is about, from the resource (empty for the resource itself): the one
 *     that must have a child ({@link Kind#MISSING}), must not ({@link Kind#PRESENT}), or holds the code
 * @param elements the elements below {@code at} that are looked for, each as keys from {@code at}: any of them
 *     written meets a {@code MISSING} check and fails a {@code PRESENT} one; for {@code NOT_IN_VALUE_SET}, the code
 *     elements, one of which must hold a code of {@code codes} when any is written
 * @param codes the value set's codes ({@code NOT_IN_VALUE_SET} only)
 * @param condition what must hold where {@code at} is written ({@code INVARIANT} only): a profile's FHIRPath
 *     invariant, translated by {@link ProfileInvariants}
 * @param messageId HAPI's message id for the failure ({@code Validation_VAL_Profile_Minimum})
 * @param message the failure's message, naming the element and profile and never the row's values
 * @param guard when the check applies (a profile the validator implies from a code of the row); null for always
 */
public record RowCheck(Kind kind, List<String> at, List<List<String>> elements, List<String> codes,
    Pred condition, String messageId, String message, Pred guard) implements Serializable {

  /** What fails the check. */
  public enum Kind { MISSING, PRESENT, NOT_IN_VALUE_SET, INVARIANT }

  public RowCheck {
    at = List.copyOf(at);
    elements = elements.stream().map(List::copyOf).toList();
    codes = List.copyOf(codes);
  }

  /** A check on the presence of elements ({@code MISSING}, {@code PRESENT}) or the codes of one. */
  public RowCheck(Kind kind, List<String> at, List<List<String>> elements, List<String> codes, String messageId,
      String message) {
    this(kind, at, elements, codes, null, messageId, message, null);
  }

  /** This check, applying only where {@code when} holds. */
  public RowCheck guarded(Pred when) {
    return new RowCheck(kind, at, elements, codes, condition, messageId, message, when);
  }

  /**
   * A condition on the elements of a resource, each named by its keys from the resource (see {@link RowCheck}),
   * which {@link SqlMapping} turns into SQL over the row's values.
   */
  public sealed interface Pred extends Serializable {}

  /** Always true or always false. */
  public record Const(boolean value) implements Pred {}

  /** The element is written. */
  public record Present(List<String> keys) implements Pred {}

  /** The element (a primitive) is written with this value, as the resource holds it. */
  public record Equals(List<String> keys, String value) implements Pred {}

  public record Not(Pred pred) implements Pred {}

  public record And(List<Pred> preds) implements Pred {}

  public record Or(List<Pred> preds) implements Pred {}

  /** The element (a primitive) is written and its value starts with {@code prefix}. */
  public record StartsWith(List<String> keys, String prefix) implements Pred {}

  /**
   * Two dates or date-times compared as FHIRPath compares them ({@code op}: {@code <}, {@code <=}, {@code >},
   * {@code >=}): at the precision both have; not true when one is missing, or they agree that far and one is more
   * precise.
   */
  public record CompareDates(List<String> left, String op, List<String> right) implements Pred {}

  /** The element (a primitive) is written and is a unit of UCUM ({@link UcumUnits}). */
  public record Ucum(List<String> keys) implements Pred {}

  /** The element (a primitive) is written and the length of its text compares ({@code op}) with {@code n}. */
  public record Length(List<String> keys, String op, int n) implements Pred {}

  /** How many of {@code preds} hold, compared ({@code op}: {@code >}, {@code >=}, {@code =}, ...) with {@code n}. */
  public record Count(List<Pred> preds, String op, int n) implements Pred {}
}
