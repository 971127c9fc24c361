package org.fhirbeam.pipeline;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code preview} on the tutorial's files, and mapping errors reported for all mappings at once. */
class PreviewTest {
  static final String TUTORIAL = DefaultJobTest.HOME.resolve("testdata/tutorial/pipeline.yaml").toString();

  @TempDir
  Path tmp;

  @Test
  void previewShowsEachResourceWithTheRulesThatWroteItOrWhyTheRowIsRejected() throws IOException {
    Path labs = Files.writeString(tmp.resolve("labs.csv"), "sample_id,mrn,collected,test,result,unit,flag\n"
        + "S-1,MRN-1,05.03.2024 08:15,GLU,2.50,mmol/L,\n"
        + "S-2,MRN-1,31.02.2024 09:00,GLU,4.8,mmol/L,N\n"
        + "S-3,MRN-1,05.03.2024 08:15,GLU,1.0,mmol/L,N\n");
    Cli r = Cli.run("preview", "--config", TUTORIAL, "--rows", "2", "--set", "sources.labs.path=" + labs);
    assertThat(r.err(), r.code(), equalTo(0));
    String id = TutorialTest.id("S-1", "GLU");
    assertThat(r.out(), equalTo(String.join("\n",
        "== mapping lab_observation: source labs -> Observation",
        "   the first 2 row(s) of " + labs,
        "",
        "-- row 1: Observation/" + id,
        "   {",
        "     \"resourceType\" : \"Observation\",",
        "     \"id\" : \"" + id + "\",",
        "     \"status\" : \"final\",",
        "     \"category\" : [ {",
        "       \"coding\" : [ {",
        "         \"system\" : \"http://terminology.hl7.org/CodeSystem/observation-category\",",
        "         \"code\" : \"laboratory\"",
        "       } ]",
        "     } ],",
        "     \"code\" : {",
        "       \"coding\" : [ {",
        "         \"system\" : \"http://loinc.org\",",
        "         \"code\" : \"15074-8\"",
        "       } ],",
        "       \"text\" : \"GLU\"",
        "     },",
        "     \"subject\" : {",
        "       \"reference\" : \"Patient/MRN-1\"",
        "     },",
        "     \"effectiveDateTime\" : \"2024-03-05T08:15:00+01:00\",",
        "     \"valueQuantity\" : {",
        "       \"value\" : 2.50,",
        "       \"unit\" : \"mmol/L\",",
        "       \"system\" : \"http://unitsofmeasure.org\",",
        "       \"code\" : \"mmol/L\"",
        "     }",
        "   }",
        "   set by:",
        "     status                              <- value",
        "     category[0].coding[0].system        <- value",
        "     category[0].coding[0].code          <- value",
        "     code.coding[0].system               <- value",
        "     code.coding[0].code                 <- column 'test' via code map",
        "     code.text                           <- column 'test'",
        "     subject.reference                   <- expression 'ref('Patient', mrn)'",
        "     effectiveDateTime                   <- column 'collected'",
        "     valueQuantity.value                 <- expression 'if(matches(result, '-?[0-9]+(\\.[0-9]+)?'), result)'",
        "     valueQuantity.unit                  <- column 'unit'",
        "     valueQuantity.system                <- value",
        "     valueQuantity.code                  <- column 'unit'",
        "",
        "-- row 2: REJECTED",
        "   Observation.effectiveDateTime  rule dateTime: value is not a date/time in the expected format"
            + " (dd.MM.yyyy HH:mm)",
        "",
        "   2 row(s) previewed",
        "",
        "")));
  }

  @Test
  void problemsOfEveryMappingAreReportedTogether() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("job"));
    Files.writeString(dir.resolve("a.yaml"), "source: s\nresource: Patient\nid: {column: id}\nelements:\n"
        + "  gendr: {column: g}\n");
    Files.writeString(dir.resolve("b.yaml"), "source: s\nresource: Observation\nid: {column: id}\nelements:\n"
        + "  status: {expr: \"lowr(x)\"}\n  code.text: {value: x}\n  effective: {column: t}\n");
    Path config = Files.writeString(dir.resolve("p.yaml"), "sources:\n  s: {path: x.csv, optional: true}\n"
        + "mappings: [a.yaml, b.yaml]\n");
    Cli r = Cli.run("check-config", config.toString());
    assertThat(r.code(), equalTo(2));
    assertThat(r.err(), containsString("error: 2 mappings have 3 errors:\n  " + dir.resolve("a.yaml") + ":5: gendr:"));
    assertThat(r.err(), containsString("\n  " + dir.resolve("b.yaml") + ":5: status: expr: unknown function 'lowr'"));
    assertThat(r.err(), containsString("\n  " + dir.resolve("b.yaml") + ":7: effective: 'effective' is a choice"
        + " element: name it with its type (effectiveDateTime, effectiveInstant, effectivePeriod, effectiveTiming)\n"));
  }
}
