"""The bucket expression against hand-computed buckets, and both renderings against each other."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import Count, Max

from qvp_site.db.buckets import Bucket, bucket_sql, gapfill
from qvp_site.db.intervals import parse_interval
from qvp_site.models import JobRun


def at(*args):
    return datetime(*args, tzinfo=UTC)


MOMENTS = [
    at(2024, 2, 29, 23, 59),
    at(2024, 3, 1, 0, 0),
    at(2024, 3, 3, 18, 5),  # a Sunday: its week began Monday 2024-02-26
    at(2024, 3, 4, 9, 30),  # a Monday
    at(2024, 12, 31, 23, 59, 59),
    at(1999, 12, 31, 12, 0),  # before both origins
]

EXPECTED = {
    "1h": [at(2024, 2, 29, 23), at(2024, 3, 1), at(2024, 3, 3, 18), at(2024, 3, 4, 9),
           at(2024, 12, 31, 23), at(1999, 12, 31, 12)],
    "15 minutes": [at(2024, 2, 29, 23, 45), at(2024, 3, 1), at(2024, 3, 3, 18),
                   at(2024, 3, 4, 9, 30), at(2024, 12, 31, 23, 45), at(1999, 12, 31, 12)],
    "1d": [at(2024, 2, 29), at(2024, 3, 1), at(2024, 3, 3), at(2024, 3, 4), at(2024, 12, 31),
           at(1999, 12, 31)],
    "1w": [at(2024, 2, 26), at(2024, 2, 26), at(2024, 2, 26), at(2024, 3, 4), at(2024, 12, 30),
           at(1999, 12, 27)],
    "1mo": [at(2024, 2, 1), at(2024, 3, 1), at(2024, 3, 1), at(2024, 3, 1), at(2024, 12, 1),
            at(1999, 12, 1)],
    "3 months": [at(2024, 1, 1), at(2024, 1, 1), at(2024, 1, 1), at(2024, 1, 1), at(2024, 10, 1),
                 at(1999, 10, 1)],
    "1 year": [at(2024, 1, 1), at(2024, 1, 1), at(2024, 1, 1), at(2024, 1, 1), at(2024, 1, 1),
               at(1999, 1, 1)],
}  # fmt: skip


@pytest.fixture
def runs(db):
    JobRun.objects.bulk_create(JobRun(job=f"r{i}", started_at=m) for i, m in enumerate(MOMENTS))


@pytest.mark.parametrize("width", sorted(EXPECTED))
def test_bucket_expression_matches_hand_computed_buckets(runs, width):
    found = dict(
        JobRun.objects.annotate(bucket=Bucket("started_at", width)).values_list("job", "bucket")
    )
    assert [found[f"r{i}"] for i in range(len(MOMENTS))] == EXPECTED[width]


@pytest.mark.parametrize("width", sorted(EXPECTED))
def test_python_floor_agrees_with_the_database(width):
    assert [parse_interval(width).floor(m) for m in MOMENTS] == EXPECTED[width]


def test_bucketed_aggregation(runs):
    rows = list(
        JobRun.objects.annotate(bucket=Bucket("started_at", "1w"))
        .values("bucket")
        .annotate(n=Count("id"), last=Max("started_at"))
        .order_by("bucket")
    )
    assert [(r["bucket"], r["n"]) for r in rows] == [
        (at(1999, 12, 27), 1),
        (at(2024, 2, 26), 3),
        (at(2024, 3, 4), 1),
        (at(2024, 12, 30), 1),
    ]


def test_gapfill_adds_the_missing_buckets(runs):
    bucketed = (
        JobRun.objects.filter(started_at__gte=at(2024, 2, 1), started_at__lt=at(2024, 4, 1))
        .annotate(bucket=Bucket("started_at", "1w"))
        .values("bucket")
        .annotate(n=Count("id"))
    )
    rows = gapfill(bucketed, "1w", at(2024, 2, 19), at(2024, 3, 12))
    assert [(r["bucket"], r["n"]) for r in rows] == [
        (at(2024, 2, 19), None),
        (at(2024, 2, 26), 3),
        (at(2024, 3, 4), 1),
        (at(2024, 3, 11), None),
    ]


@pytest.mark.timescaledb
@pytest.mark.parametrize("width", sorted(EXPECTED))
def test_date_bin_rendering_equals_time_bucket(width):
    """On TimescaleDB, the plain engine's SQL and time_bucket agree on every moment."""
    interval = parse_interval(width)
    plain = bucket_sql(interval, "m", timescaledb=False)
    timescale = bucket_sql(interval, "m", timescaledb=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m, {plain}, {timescale} FROM unnest(%s::timestamptz[]) AS t(m)"
            " UNION ALL"
            f" SELECT m, {plain}, {timescale} FROM generate_series("
            " TIMESTAMPTZ '1998-06-01', TIMESTAMPTZ '2026-06-01', INTERVAL '7 hours 13 minutes') m",
            [MOMENTS],
        )
        disagreements = [row for row in cursor.fetchall() if row[1] != row[2]]
    assert disagreements == []
