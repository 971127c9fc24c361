package org.fhirbeam.io;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.values.PCollection;
import org.fhirbeam.config.DuckDbSettings;
import org.fhirbeam.config.SourceConfig;
import org.fhirbeam.data.RowBatch;
import org.fhirbeam.data.RowBatch.LocationKind;
import org.fhirbeam.data.RowBatchCoder;
import org.apache.beam.sdk.util.CoderUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReadWithDuckDbTest {
  static final DuckDbSettings SETTINGS = new DuckDbSettings("unused.db", false, "256MB", 1, List.of());

  @TempDir
  Path dir;

  @Test
  void filesAreReadInOrderAsTextBatchesWithTheirPositions() throws IOException {
    Files.writeString(dir.resolve("a.csv"), "id,born\n1,2001-02-03\n2,\n3,1999-12-31\n");
    Files.writeString(dir.resolve("b.json"), "[{\"id\": \"4\", \"born\": \"1980-01-01\", \"extra\": 7}]");
    var source = new FileSourcePlanner(SETTINGS).plan(new SourceConfig("s", dir + "/*", SourceConfig.Format.AUTO,
        "test"));

    TestPipeline p = TestPipeline.create().enableAbandonedNodeEnforcement(true);
    PCollection<RowBatch> rows = p.apply(ReadWithDuckDb.of(source.tasks()).withSettings(SETTINGS).withBatchSize(2));
    String a = dir.resolve("a.csv").toString();
    String b = dir.resolve("b.json").toString();
    String[] csvColumns = {"id", "born"};
    PAssert.that(rows).containsInAnyOrder(
        new RowBatch("s", a, LocationKind.LINE, 2, csvColumns, new String[][] {{"1", "2001-02-03"}, {"2", null}}),
        new RowBatch("s", a, LocationKind.LINE, 4, csvColumns, new String[][] {{"3", "1999-12-31"}}),
        new RowBatch("s", b, LocationKind.ROW, 1, new String[] {"id", "born", "extra"},
            new String[][] {{"4", "1980-01-01", "7"}}));
    p.run().waitUntilFinish();
  }

  @Test
  void coderRoundTripsNullsAndUnicode() throws Exception {
    RowBatch b = new RowBatch("s", "/f.csv", LocationKind.ROW, 7, new String[] {"a", "b"},
        new String[][] {{"Zoë", null}, {"", "x\ny"}});
    assertThat(CoderUtils.decodeFromByteArray(RowBatchCoder.of(), CoderUtils.encodeToByteArray(RowBatchCoder.of(), b)),
        equalTo(b));
  }
}
