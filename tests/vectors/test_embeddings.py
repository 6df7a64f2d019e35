"""Building feature embeddings: windows every 15 minutes, incremental, COPY, the index set
aside and rebuilt on a bulk load; build_embeddings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from qvp_site.db.vector_indexes import vector_index_definitions
from vectors import bars, embeddings, features
from vectors.models import FeatureEmbedding, FeatureSet


def embedded(symbol: str | None = None) -> list[datetime]:
    rows = FeatureEmbedding.objects.order_by("ts")
    if symbol:
        rows = rows.filter(instrument__symbol=symbol)
    return list(rows.values_list("ts", flat=True))


def test_windows_close_every_15_minutes_after_a_full_window(week_of_bars):
    report = embeddings.build(week_of_bars.values())
    # Seven sessions of 390 minutes: a window needs 391 bars, so the first closes 15 minutes
    # into the second session; then 26 windows a session.
    assert report.created == {"AAPL": 6 * 26, "SPY": 6 * 26}
    times = embedded("AAPL")
    assert all(t.minute % 15 == 0 and t.second == 0 for t in times)
    assert times[0] == datetime(2024, 5, 10, 13, 45, tzinfo=UTC)
    feature_set = FeatureSet.objects.get()
    assert (feature_set.name, feature_set.version, feature_set.dimensions) == ("bars-1m", 1, 128)
    assert feature_set.fitted_rows == 2 * 6 * 26
    row = FeatureEmbedding.objects.first()
    assert len(row.embedding) == 128
    assert len(row.raw) == 128
    assert np.abs(row.embedding).max() <= features.CLIP


def test_the_stored_vector_is_the_pipeline_on_the_window_scaled(week_of_bars):
    embeddings.build(week_of_bars.values())
    row = FeatureEmbedding.objects.filter(instrument__symbol="SPY").order_by("ts")[40]
    series = bars.load(week_of_bars["SPY"].id)
    end = int(np.flatnonzero(series.closes_at() == np.datetime64(row.ts.replace(tzinfo=None)))[0])
    raw = features.compute(features.windows_ending_at(series.columns(), [end]))
    assert np.allclose(row.raw, raw[0], rtol=1e-12)
    feature_set = row.feature_set
    scaled = (raw[0] - np.array(feature_set.center)) / np.array(feature_set.scale)
    assert np.allclose(row.embedding, np.clip(scaled, -8, 8), atol=1e-5)


def vectors_by_window(rows) -> dict:
    return {(i, t): v for i, t, v in rows.values_list("instrument_id", "ts", "embedding")}


def test_incremental_builds_embed_only_what_is_missing(week_of_bars):
    everything = embeddings.build(week_of_bars.values())
    full = {s: embedded(s) for s in week_of_bars}
    before = vectors_by_window(FeatureEmbedding.objects.all())
    FeatureEmbedding.objects.filter(ts__gte=datetime(2024, 5, 15, tzinfo=UTC)).delete()
    FeatureEmbedding.objects.filter(ts__lt=datetime(2024, 5, 13, tzinfo=UTC)).delete()
    kept = FeatureEmbedding.objects.count()

    newer = embeddings.build(week_of_bars.values())  # after the newest stored
    assert newer.total == 2 * 3 * 26
    assert embeddings.build(week_of_bars.values()).total == 0
    # The older ones come back only when asked for, and nothing is stored twice.
    older = embeddings.build(week_of_bars.values(), since=datetime(2024, 5, 1, tzinfo=UTC))
    assert older.total == everything.total - kept - newer.total == 2 * 26
    assert {s: embedded(s) for s in week_of_bars} == full
    # The scaler stayed as the first build fitted it: the same windows, the same vectors.
    after = vectors_by_window(FeatureEmbedding.objects.all())
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[key], before[key]) for key in before)


def test_a_first_load_sets_the_index_aside_and_builds_it_after(week_of_bars):
    report = embeddings.build([week_of_bars["AAPL"]])
    assert report.rebuilt_index
    with connection.cursor() as cursor:
        definitions = vector_index_definitions(cursor, embeddings.TABLE)
    assert list(definitions) == ["featureembedding_cosine_hnsw"]
    assert (
        "hnsw (embedding vector_cosine_ops) WITH (m='12', ef_construction='48')"
        in (definitions["featureembedding_cosine_hnsw"])
    )
    assert not embeddings.build([week_of_bars["SPY"]]).rebuilt_index  # the table has rows


def test_rebuild_reloads_every_window_with_the_same_scaler(week_of_bars):
    embeddings.build(week_of_bars.values())
    before = vectors_by_window(FeatureEmbedding.objects.all())
    report = embeddings.build(week_of_bars.values(), rebuild=True)
    assert report.rebuilt_index
    assert report.total == FeatureEmbedding.objects.count() == 2 * 6 * 26
    after = vectors_by_window(FeatureEmbedding.objects.all())
    assert all(np.array_equal(before[key], after[key]) for key in before)


def test_the_database_refuses_a_wrong_dimension_or_nan(week_of_bars):
    embeddings.build([week_of_bars["AAPL"]])
    row = FeatureEmbedding.objects.first()
    nan = "[" + ",".join(["NaN"] + ["0"] * 127) + "]"
    raw = list(row.raw)
    with connection.cursor() as cursor:
        for vector, values, message in (
            ("[1,2,3]", raw, "expected 128 dimensions"),
            (nan, raw, "NaN"),
            (nan.replace("NaN", "0"), raw[:127], "featureembedding_raw_features"),
            (nan.replace("NaN", "0"), [[x] for x in raw], "featureembedding_raw_features"),
        ):
            cursor.execute("SAVEPOINT bad")
            with pytest.raises(Exception, match=message):
                cursor.execute(
                    "INSERT INTO vectors_featureembedding (instrument_id, feature_set_id, ts,"
                    " embedding, raw) VALUES (%s, %s, %s, %s::vector, %s::float8[])",
                    [
                        row.instrument_id,
                        row.feature_set_id,
                        row.ts + timedelta(days=9),
                        vector,
                        values,
                    ],
                )
            cursor.execute("ROLLBACK TO SAVEPOINT bad")


def test_build_embeddings_command(week_of_bars):
    out, err = StringIO(), StringIO()
    call_command("build_embeddings", "--symbol", "aapl", stdout=out, stderr=err)
    assert "AAPL: 156 feature windows embedded." in out.getvalue()
    assert "156 feature embeddings written (HNSW index rebuilt after the load)." in out.getvalue()
    assert "features: 100%" in err.getvalue()  # the progress bar
    out = StringIO()
    call_command("build_embeddings", "--symbol", "AAPL", "--no-progress", stdout=out)
    assert "0 feature embeddings written." in out.getvalue()
    with pytest.raises(CommandError, match="unknown symbol ZZZ on"):
        call_command("build_embeddings", "--symbol", "ZZZ")


def test_the_build_job_is_registered():
    from qvp_site.scheduler import discover

    job = discover()["build-embeddings"]
    assert job.cron == "15 * * * *"
