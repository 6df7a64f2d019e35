"""The time-series migration operations, forwards and backwards, on the engine in use.

In the manner of Django's tests/postgres_tests/test_operations.py: a model made for the tests
is created through migration state, each operation is applied and reversed with a schema
editor, and the database is inspected in between.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, migrations, models, transaction
from django.db.migrations.state import ProjectState
from django.utils import timezone

from qvp_site.db import aggregates, catalog, engine, partitions
from qvp_site.db.intervals import parse_interval
from qvp_site.db.maintenance import maintain
from qvp_site.db.operations import (
    AddCompressionPolicy,
    AddRetentionPolicy,
    CreateContinuousAggregate,
    CreateHypertable,
)
from tests.migration_ops import apply_operation, collect_sql, run_script

APP = "tsops"
TABLE = "tsops_reading"

pytestmark = pytest.mark.django_db(transaction=True)

CREATE_READING = migrations.CreateModel(
    "Reading",
    [
        ("id", models.BigAutoField(primary_key=True)),
        ("ts", models.DateTimeField()),
        ("sensor", models.CharField(max_length=20)),
        ("value", models.FloatField()),
    ],
    options={
        "constraints": [
            models.UniqueConstraint(fields=["sensor", "ts"], name="reading_sensor_ts_uniq"),
            models.CheckConstraint(condition=models.Q(value__gte=0), name="reading_value_gte_0"),
        ],
        "indexes": [models.Index(fields=["ts"], name="reading_ts_idx")],
    },
)


apply = partial(apply_operation, APP)
collect = partial(collect_sql, APP)


@pytest.fixture
def reading_state():
    """A project state holding the Reading model and its (ordinary) table; dropped after."""
    state = apply(ProjectState(), CREATE_READING)
    yield state
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'tsops_hourly'")
        kind = cursor.fetchone()
        if kind:
            cursor.execute(
                f"DROP {'TABLE' if kind[0] == 'r' else 'MATERIALIZED VIEW'} tsops_hourly CASCADE"
            )
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE} CASCADE")
        cursor.execute("DELETE FROM qvp_timeseries_aggregate WHERE source_table = %s", [TABLE])
        cursor.execute("DELETE FROM qvp_timeseries_table WHERE table_name = %s", [TABLE])


def reading(state):
    return state.apps.get_model(APP, "Reading")


def hypertable(state, interval="7 days"):
    return apply(state, CreateHypertable("Reading", "ts", interval))


def table_kind() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relkind, EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
            " FROM pg_class c WHERE c.oid = %s::regclass",
            [TABLE],
        )
        relkind, has_timescaledb = cursor.fetchone()
        if relkind == "p":
            return "partitioned"
        if has_timescaledb:
            cursor.execute(
                "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
                [TABLE],
            )
            if cursor.fetchone():
                return "hypertable"
        return "ordinary"


def primary_key_columns() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_constraint c"
            " JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, n) ON true"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'p' ORDER BY k.n",
            [TABLE],
        )
        return [row[0] for row in cursor.fetchall()]


def names_on_table() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass"
            " AND contype IN ('u', 'c', 'p') UNION"
            " SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
            [TABLE, TABLE],
        )
        return {row[0] for row in cursor.fetchall()}


def expected_kind(timescaledb: bool) -> str:
    return "hypertable" if timescaledb else "partitioned"


def test_create_hypertable_forwards_and_backwards_keeps_rows_and_names(reading_state, timescaledb):
    Reading = reading(reading_state)
    old = datetime(2020, 3, 4, 10, 30, tzinfo=UTC)
    Reading.objects.create(ts=old, sensor="a", value=1.0)
    Reading.objects.create(ts=timezone.now(), sensor="a", value=2.0)
    names_before = names_on_table()

    state = hypertable(reading_state)
    assert table_kind() == expected_kind(timescaledb)
    assert primary_key_columns() == ["id", "ts"]
    assert names_on_table() == names_before
    Reading = reading(state)
    assert Reading.objects.count() == 2
    created = Reading.objects.create(ts=old + timedelta(minutes=1), sensor="a", value=3.0)
    assert created.id > 2  # the id generator carried on past the copied rows

    apply(reading_state, CreateHypertable("Reading", "ts", "7 days"), backwards=True)
    assert table_kind() == "ordinary"
    assert primary_key_columns() == ["id"]
    assert names_on_table() == names_before
    assert sorted(reading(reading_state).objects.values_list("value", flat=True)) == [1, 2, 3]
    assert reading(reading_state).objects.create(ts=old, sensor="b", value=4.0).id > created.id
    with connection.cursor() as cursor:
        assert not catalog.time_series(cursor, TABLE)


def test_constraints_still_hold_after_the_rebuild(reading_state):
    Reading = reading(hypertable(reading_state))
    now = timezone.now()
    Reading.objects.create(ts=now, sensor="a", value=1.0)
    # Both engines name the chunk's own index in a unique violation; the key says which rule.
    with pytest.raises(IntegrityError, match=r"Key \(sensor, ts\)"), transaction.atomic():
        Reading.objects.create(ts=now, sensor="a", value=2.0)
    with pytest.raises(IntegrityError, match="reading_value_gte_0"), transaction.atomic():
        Reading.objects.create(ts=now, sensor="b", value=-1.0)


def test_forwards_twice_changes_nothing(reading_state):
    state = hypertable(reading_state)
    hypertable(state)
    assert primary_key_columns() == ["id", "ts"]


def test_unique_constraint_without_the_time_column_is_refused(reading_state):
    state = apply(
        reading_state,
        migrations.AddConstraint(
            "Reading", models.UniqueConstraint(fields=["sensor"], name="reading_sensor_uniq")
        ),
    )
    with pytest.raises(DatabaseError, match=r"(?i)partition|dimension"):
        hypertable(state)


def test_row_outside_every_partition_is_refused_with_the_missing_range(reading_state, timescaledb):
    if timescaledb:
        pytest.skip("TimescaleDB creates chunks on demand; partitions are the plain engine's")
    Reading = reading(hypertable(reading_state))
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        Reading.objects.create(ts=datetime(2019, 6, 5, 12, tzinfo=UTC), sensor="a", value=1.0)
    message = str(refused.value)
    assert "no partition of tsops_reading holds ts=2019-06-05 12:00:00+00" in message
    assert "the missing range is [2019-06-03 00:00:00+00, 2019-06-10 00:00:00+00)" in message
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        assert cursor.fetchone()[0] == 0


def test_maintain_cover_creates_the_partitions_a_load_needs(reading_state, timescaledb):
    Reading = reading(hypertable(reading_state))
    lines = []
    maintain(
        report=lines.append,
        cover=(datetime(2019, 6, 1, tzinfo=UTC), datetime(2019, 6, 20, tzinfo=UTC)),
    )
    Reading.objects.create(ts=datetime(2019, 6, 5, 12, tzinfo=UTC), sensor="a", value=1.0)
    if not timescaledb:
        weeks = ", ".join(f"tsops_reading_p201906{day}" for day in ("03", "10", "17"))
        assert any(f"tsops_reading_p20190527, {weeks}" in line for line in lines), lines


def test_describe_name_fragment_and_deconstruct():
    operation = CreateHypertable("Reading", "ts", "7 days")
    assert operation.describe() == "Create hypertable Reading on ts in chunks of 7 days"
    assert operation.migration_name_fragment == "create_hypertable_reading"
    name, args, kwargs = operation.deconstruct()
    assert name == "CreateHypertable"
    assert args == []
    assert kwargs == {"model_name": "Reading", "time_column": "ts", "chunk_interval": "7 days"}
    for op in (
        AddCompressionPolicy("Reading", "7 days", segment_by=["sensor"], order_by="ts DESC"),
        AddRetentionPolicy("Reading", "90 days"),
        CreateContinuousAggregate(
            "tsops_hourly", "Reading", "ts", "1h", [("high", "max", "value")], ["sensor"]
        ),
    ):
        _, _, kwargs = op.deconstruct()
        assert type(op)(**kwargs).deconstruct() == op.deconstruct()
        assert op.describe()
        assert op.migration_name_fragment


def test_operations_validate_their_arguments():
    with pytest.raises(ValueError, match="unknown unit"):
        CreateHypertable("Reading", "ts", "7 fortnights")
    with pytest.raises(ValueError, match="unknown function 'median'"):
        CreateContinuousAggregate("x", "Reading", "ts", "1h", [("m", "median", "value")])


def test_compression_policy(reading_state, timescaledb):
    state = apply(
        hypertable(reading_state), AddCompressionPolicy("Reading", "7 days", ["sensor"], "ts DESC")
    )
    with connection.cursor() as cursor:
        (series,) = catalog.time_series(cursor, TABLE)
        assert (series.compress_after, series.segment_by) == ("7 days", ["sensor"])
        if timescaledb:
            cursor.execute(
                "SELECT count(*) FROM timescaledb_information.jobs"
                " WHERE hypertable_name = %s AND proc_name = 'policy_compression'",
                [TABLE],
            )
            assert cursor.fetchone()[0] == 1
    apply(state, AddCompressionPolicy("Reading", "7 days", ["sensor"], "ts DESC"), backwards=True)
    with connection.cursor() as cursor:
        assert catalog.time_series(cursor, TABLE)[0].compress_after is None
        if timescaledb:
            cursor.execute(
                "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name = %s",
                [TABLE],
            )
            assert cursor.fetchone()[0] == 0


def test_retention_drops_old_rows_and_follows_the_setting(reading_state, settings):
    state = hypertable(reading_state)
    Reading = reading(state)
    now = timezone.now()
    lines = []
    maintain(report=lines.append, cover=(now - timedelta(days=400), now))
    Reading.objects.create(ts=now - timedelta(days=300), sensor="a", value=1.0)
    Reading.objects.create(ts=now - timedelta(days=60), sensor="a", value=2.0)
    Reading.objects.create(ts=now, sensor="a", value=3.0)

    apply(state, AddRetentionPolicy("Reading", "90 days"))
    maintain(report=lines.append)
    assert sorted(Reading.objects.values_list("value", flat=True)) == [2.0, 3.0]

    settings.QVP_RETENTION = {TABLE: "30 days"}
    maintain(report=lines.append)
    assert list(Reading.objects.values_list("value", flat=True)) == [3.0]
    assert any("retention 30 days" in line for line in lines), lines

    settings.QVP_RETENTION = {TABLE: "off"}
    with connection.cursor() as cursor:
        assert catalog.time_series(cursor, TABLE)[0].retention is None


@pytest.fixture
def hourly(reading_state):
    state = hypertable(reading_state)
    operation = CreateContinuousAggregate(
        name="tsops_hourly",
        model_name="Reading",
        time_column="ts",
        bucket="1h",
        group_by=["sensor"],
        columns=[
            ("open", "first", "value"),
            ("high", "max", "value"),
            ("low", "min", "value"),
            ("close", "last", "value"),
            ("total", "sum", "value"),
            ("n", "count", "*"),
        ],
    )
    return apply(state, operation), operation


def test_continuous_aggregate_refreshes_the_range_it_is_given(hourly):
    state, _ = hourly
    Reading = reading(state)
    base = datetime(2024, 5, 17, 13, 0, tzinfo=UTC)
    maintain(report=lambda _line: None, cover=(base - timedelta(days=1), base + timedelta(days=1)))
    for minute, value in [(5, 10.0), (50, 12.0), (20, 7.0), (70, 20.0)]:
        Reading.objects.create(ts=base + timedelta(minutes=minute), sensor="a", value=value)

    with connection.cursor() as cursor:
        (agg,) = catalog.aggregates(cursor, TABLE)
    assert aggregates.refresh(agg, base, base + timedelta(minutes=70)) == (
        base,
        base + timedelta(hours=2),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bucket, sensor, open, high, low, close, total, n"
            " FROM tsops_hourly ORDER BY bucket"
        )
        rows = cursor.fetchall()
    assert rows == [
        (base, "a", 10.0, 12.0, 7.0, 12.0, 29.0, 3),
        (base + timedelta(hours=1), "a", 20.0, 20.0, 20.0, 20.0, 20.0, 1),
    ]


def test_continuous_aggregate_backwards(hourly, timescaledb):
    state, operation = hourly
    apply(state, operation, backwards=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('tsops_hourly')")
        assert cursor.fetchone()[0] is None
        assert not catalog.aggregates(cursor, TABLE)


@pytest.mark.timescaledb
def test_timescaledb_objects_are_real(hourly):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = 'tsops_hourly'"
        )
        assert cursor.fetchone()[0] == 1
        cursor.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions"
            " WHERE hypertable_name = %s",
            [TABLE],
        )
        assert cursor.fetchone()[0] == timedelta(days=7)
    assert engine.detect().timescaledb_version


def test_timeseries_status_shows_the_table_its_chunks_and_policies(reading_state, timescaledb):
    state = apply(hypertable(reading_state), AddRetentionPolicy("Reading", "90 days"))
    reading(state).objects.create(ts=timezone.now(), sensor="a", value=1.0)
    out = StringIO()
    call_command("timeseries_status", stdout=out)
    text = out.getvalue()
    assert f"engine: {engine.detect().engine}" in text
    kind = "hypertable" if timescaledb else "partitioned table"
    assert f"{TABLE} ({kind}, chunks of 7 days):" in text
    assert "retention" in text


def test_before_postgresql_17_ids_come_from_a_sequence(reading_state, timescaledb, monkeypatch):
    """PostgreSQL 16 has no identity columns on partitioned tables: a sequence serves instead."""
    if timescaledb:
        pytest.skip("hypertables keep their identity column on every version")
    # The server decides by its version: this one is made to count as one before identity.
    monkeypatch.setattr("qvp_site.db.rebuild.IDENTITY_ON_PARTITIONED", 10_000_000)
    Reading = reading(reading_state)
    Reading.objects.create(ts=timezone.now(), sensor="a", value=1.0)
    Reading = reading(hypertable(reading_state))
    assert Reading.objects.create(ts=timezone.now(), sensor="b", value=2.0).id == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        assert cursor.fetchone()[0] == "public.tsops_reading_id_seq"


def test_a_load_refreshes_its_aggregates_after_it_commits(hourly):
    state, _ = hourly
    Reading = reading(state)
    base = datetime(2024, 5, 17, 13, 0, tzinfo=UTC)
    maintain(report=lambda _line: None, cover=(base, base + timedelta(days=1)))
    with transaction.atomic():
        Reading.objects.create(ts=base + timedelta(minutes=5), sensor="a", value=10.0)
        aggregates.refresh_after_commit(TABLE, base, base + timedelta(minutes=5))
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM tsops_hourly")
            assert cursor.fetchone()[0] == 0  # not before the load commits
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket, n FROM tsops_hourly")
        assert cursor.fetchall() == [(base, 1)]
        cursor.execute(
            "SELECT refreshed_from, refreshed_to FROM qvp_timeseries_aggregate"
            " WHERE view_name = 'tsops_hourly'"
        )
        assert cursor.fetchone() == (base, base + timedelta(hours=1))


def test_two_maintains_at_once_both_succeed(reading_state):
    import threading

    hypertable(reading_state)
    errors, reports = [], []
    cover = (datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 6, 30, tzinfo=UTC))

    def run():
        try:
            maintain(report=reports.append, cover=cover)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    created = [line for line in reports if line.startswith(f"{TABLE}:") and "2021" in line]
    assert len(created) == 1 or engine.is_timescaledb()  # one of them made the partitions


HOURLY = CreateContinuousAggregate(
    "tsops_hourly", "Reading", "ts", "1h", [("high", "max", "value")], ["sensor"]
)


@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize(
    "operation",
    [
        CreateHypertable("Reading", "ts", "7 days"),
        AddCompressionPolicy("Reading", "7 days", ["sensor"], "ts DESC"),
        AddRetentionPolicy("Reading", "90 days"),
        HOURLY,
    ],
    ids=lambda operation: type(operation).__name__,
)
def test_sqlmigrate_collects_the_sql_and_it_does_not_depend_on_the_data(
    reading_state, operation, backwards
):
    """What sqlmigrate shows is what runs on every database of the engine: the same for an
    empty table, a table with rows, and a table already converted; collecting runs nothing."""
    empty = collect(reading_state, operation, backwards=backwards)
    assert empty
    assert all(statement.strip() for statement in empty)
    assert table_kind() == "ordinary"
    Reading = reading(reading_state)
    Reading.objects.create(ts=datetime(2020, 3, 4, 10, 30, tzinfo=UTC), sensor="a", value=1.0)
    Reading.objects.create(ts=timezone.now(), sensor="a", value=2.0)
    assert collect(reading_state, operation, backwards=backwards) == empty
    hypertable(reading_state)
    assert collect(reading_state, operation, backwards=backwards) == empty


def test_the_collected_sql_run_by_hand_converts_the_table_and_back(reading_state, timescaledb):
    Reading = reading(reading_state)
    old = datetime(2020, 3, 4, 10, 30, tzinfo=UTC)
    Reading.objects.create(ts=old, sensor="a", value=1.0)
    Reading.objects.create(ts=timezone.now(), sensor="a", value=2.0)
    names_before = names_on_table()
    operation = CreateHypertable("Reading", "ts", "7 days")
    forwards = collect(reading_state, operation)

    run_script(forwards)
    assert table_kind() == expected_kind(timescaledb)
    assert (primary_key_columns(), names_on_table()) == (["id", "ts"], names_before)
    with connection.cursor() as cursor:
        assert catalog.time_series(cursor, TABLE)[0].chunk_interval == parse_interval("7 days")
        made = [] if timescaledb else partitions.partitions(cursor, TABLE)
    run_script(forwards)  # again: nothing changes
    with connection.cursor() as cursor:
        assert ([] if timescaledb else partitions.partitions(cursor, TABLE)) == made
    assert Reading.objects.create(ts=old, sensor="b", value=3.0).id == 3

    run_script(collect(reading_state, operation, backwards=True))
    assert table_kind() == "ordinary"
    assert (primary_key_columns(), names_on_table()) == (["id"], names_before)
    assert sorted(Reading.objects.values_list("value", flat=True)) == [1, 2, 3]
    with connection.cursor() as cursor:
        assert not catalog.time_series(cursor, TABLE)


@pytest.mark.parametrize(
    ("chunk", "oldest_age"),
    [("7 days", timedelta(days=100)), ("6 hours", timedelta(days=3)), ("1 month", None)],
)
def test_partitions_are_those_the_python_rules_name_and_bound(
    reading_state, timescaledb, chunk, oldest_age
):
    """The server makes the partitions of a rebuild as ``partitions.create_partitions`` does:
    from the oldest row to ``ahead_of`` now, aligned and named by the same rules."""
    if timescaledb:
        pytest.skip("TimescaleDB creates chunks on demand; partitions are the plain engine's")
    width = parse_interval(chunk)
    before = timezone.now()
    oldest = before - oldest_age if oldest_age else datetime(2024, 2, 29, 5, 7, tzinfo=UTC)
    reading(reading_state).objects.create(ts=oldest, sensor="a", value=1.0)
    hypertable(reading_state, chunk)
    after = timezone.now()
    with connection.cursor() as cursor:
        made = [(p.name, p.lower, p.upper) for p in partitions.partitions(cursor, TABLE)]

    def expected(now: datetime) -> list[tuple]:
        bounds = partitions.bounds_covering(width, oldest, partitions.ahead_of(width, now))
        return [(partitions.partition_name(TABLE, lo, width), lo, up) for lo, up in bounds]

    assert made in (expected(before), expected(after))
    assert ("T" in made[0][0]) == (chunk == "6 hours")  # a time in the name below a day


def retention_jobs() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT job_id, (config->>'drop_after')::interval FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
            [TABLE],
        )
        return cursor.fetchall()


@pytest.mark.timescaledb
def test_the_retention_policy_is_the_setting_s_and_an_equal_one_is_kept(reading_state, settings):
    state = hypertable(reading_state)
    operation = AddRetentionPolicy("Reading", "90 days")
    settings.QVP_RETENTION = {TABLE: "30 days"}
    apply(state, operation)
    ((job, drop_after),) = retention_jobs()
    assert drop_after == timedelta(days=30)
    apply(state, operation)
    assert retention_jobs() == [(job, drop_after)]  # the same job, its history kept
    settings.QVP_RETENTION = {}
    apply(state, operation)
    assert [after for _, after in retention_jobs()] == [timedelta(days=90)]
    settings.QVP_RETENTION = {TABLE: "off"}
    apply(state, operation)
    assert retention_jobs() == []
