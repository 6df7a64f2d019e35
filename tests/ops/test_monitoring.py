"""The monitoring views: system_health and its detail views, trading_metrics."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from qvp_site.db.partitions import prepare_load
from tests.fixtures.trading import fill, make_order


def rows(sql: str, params=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def flush_statistics() -> None:
    """Make this session's counters visible to the statistics views now, not in a second."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:  # a new statement: the flush happens between them
        cursor.execute("SELECT pg_stat_clear_snapshot()")


@pytest.mark.parametrize("role", ["trading_readonly", "trading_app"])
def test_both_roles_read_system_health_and_see_other_sessions(db, app_role_password, role):
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
    health = rows("SELECT * FROM system_health")
    checks = {r["check"] for r in health}
    assert {"database_size", "connections", "connections_server", "table_size"} <= checks
    # This very session is active: visible with its state, which a plain role could not read
    # from pg_stat_activity for sessions of other roles.
    active = [r for r in health if r["check"] == "connections" and r["subject"] == "active"]
    assert active
    assert active[0]["value"] >= 1
    states = rows("SELECT DISTINCT role FROM system_connections WHERE state = 'active'")
    # The session's login role, though a plain role may not read other roles' sessions.
    assert connection.settings_dict["USER"] in {r["role"] for r in states}
    sizes = {r["subject"]: r["value"] for r in health if r["check"] == "table_size"}
    assert sizes
    assert all(v > 0 for v in sizes.values())


def test_the_app_role_may_not_change_the_views(db, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege('trading_app', 'system_health', 'SELECT'),"
            " has_table_privilege('trading_app', 'system_table_sizes', 'INSERT'),"
            " has_function_privilege('trading_readonly', 'qvp_slow_statements(integer)',"
            " 'EXECUTE'), has_function_privilege('public', 'qvp_connections()', 'EXECUTE')"
        )
        assert cursor.fetchone() == (True, False, True, False)


def test_table_sizes_count_partitions_with_their_table(instrument):
    from marketdata.models import MinuteBar

    start = timezone.now().replace(second=0, microsecond=0) - timedelta(days=40)
    prepare_load("marketdata_minutebar", start, start + timedelta(days=40))
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=instrument, ts=start + timedelta(days=d), open=1, high=2, low=1,
                  close=2, volume=10)
        for d in range(0, 40, 3)
    )  # fmt: skip
    bars = rows("SELECT * FROM system_table_sizes WHERE table_name = 'marketdata_minutebar'")[0]
    assert bars["partitions"] >= 2  # 40 days of bars span several chunks or partitions
    assert bars["total_bytes"] >= bars["table_bytes"] + bars["index_bytes"] > 0
    names = {r["table_name"] for r in rows("SELECT table_name FROM system_table_sizes")}
    assert not any(name.startswith(("_hyper_", "marketdata_minutebar_p")) for name in names)


@pytest.mark.django_db(transaction=True)
def test_unused_indexes_and_dead_tuples_are_reported():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE ops_probe (id int PRIMARY KEY, tag int);"
            " CREATE INDEX ops_probe_tag_idx ON ops_probe (tag);"
            " INSERT INTO ops_probe SELECT g, g FROM generate_series(1, 1000) g;"
            " UPDATE ops_probe SET tag = tag + 1 WHERE id <= 300"
        )
    try:
        flush_statistics()
        unused = rows("SELECT * FROM system_index_usage WHERE table_name = 'ops_probe'")
        by_name = {r["index_name"]: r for r in unused}
        assert by_name["ops_probe_tag_idx"]["unused"] is True
        assert by_name["ops_probe_pkey"]["unused"] is False  # a key is never "unused"
        health = rows("SELECT * FROM system_health WHERE subject = 'ops_probe'")
        dead = [r for r in health if r["check"] == "dead_tuples"]
        assert dead
        assert dead[0]["value"] == 300
        assert any(
            r["check"] == "unused_index" and r["subject"] == "ops_probe_tag_idx"
            for r in rows("SELECT * FROM system_health")
        )
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("SELECT count(*) FROM ops_probe WHERE tag = 5")
            cursor.execute("RESET enable_seqscan")
        flush_statistics()
        used = rows("SELECT unused, scans FROM system_index_usage"
                    " WHERE index_name = 'ops_probe_tag_idx'")[0]  # fmt: skip
        assert used["scans"] >= 1
        assert used["unused"] is False
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE ops_probe")


def test_slow_statements_come_from_pg_stat_statements_when_the_server_has_it(db):
    installed = rows("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if not installed:
        pytest.skip("this server does not preload pg_stat_statements")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.05), 'ops-slow-probe'")
    slow = rows("SELECT * FROM qvp_slow_statements(1000) WHERE query LIKE %s", ["%pg_sleep%"])
    assert slow
    assert slow[0]["mean_ms"] >= 50
    assert slow[0]["calls"] >= 1


def test_the_views_work_without_pg_stat_statements(db):
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS pg_stat_statements")  # rolled back after
    assert rows("SELECT * FROM system_slow_statements") == []
    health = rows("SELECT * FROM system_health")
    assert health
    assert not any(r["check"] == "slow_statement" for r in health)


def test_a_primary_reports_only_its_replicas(db):
    # The shared server may have standbys of its own (tests/ops/test_replicas.py makes one):
    # the rows, if any, describe them from the primary's side.
    assert {r["role"] for r in rows("SELECT * FROM system_replication")} <= {"primary"}


# --- trading_metrics ------------------------------------------------------------------------
@pytest.fixture
def day_of_trading(desks, instrument):
    """Alpha buys 10 @ 100 yesterday, then today sells 4 @ 110 and 6 @ 95 (fees 1 each), and a
    bust cancels a third fill; beta buys 3 @ 50 today."""
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    alpha_order = make_order(desks["alpha"], instrument, quantity="10")
    fill(alpha_order, 10, "100", at=today - timedelta(hours=3))
    sell = make_order(desks["alpha"], instrument, side="sell", quantity="12")
    fill(sell, -4, "110", fee="1", at=today + timedelta(seconds=1))
    fill(sell, -6, "95", fee="1", at=today + timedelta(seconds=2))
    busted = fill(sell, -2, "90", at=today + timedelta(seconds=3))
    fill(sell, 2, "90", at=today + timedelta(seconds=4), kind="bust", supersedes=busted,
         reason="venue bust")  # fmt: skip
    fill(
        make_order(desks["beta"], instrument, quantity="3"),
        3,
        "50",
        at=today + timedelta(seconds=5),
    )
    return desks


def test_trading_metrics_count_the_days_trades_volume_and_pnl(day_of_trading):
    metrics = {r["account"]: r for r in rows("SELECT * FROM trading_metrics")}
    alpha, beta = metrics["alpha"], metrics["beta"]
    assert (alpha["trades"], alpha["busts"]) == (2, 1)  # the busted fill does not stand
    assert alpha["volume"] == Decimal(10)
    assert alpha["notional"] == Decimal(4 * 110 + 6 * 95)
    assert alpha["fees"] == Decimal(2)
    # Realised today: 4 * (110 - 100) + 6 * (95 - 100) = 10 (yesterday's buy realised nothing).
    assert alpha["realized_pnl"] == Decimal(10)
    assert alpha["realized_pnl_after_fees"] == Decimal(8)
    assert (beta["trades"], beta["volume"], beta["realized_pnl"]) == (1, Decimal(3), Decimal(0))


def test_trading_metrics_follow_row_level_security(day_of_trading, connect_as_app):
    conn = connect_as_app()
    for user, expected in (("alice", ["alpha"]), ("audrey", ["alpha", "beta"])):
        with conn.transaction():
            conn.execute(
                "SELECT set_config('qvp.user_id', %s, true)", [str(day_of_trading[user].pk)]
            )
            seen = conn.execute("SELECT account FROM trading_metrics ORDER BY 1").fetchall()
            assert [r[0] for r in seen] == expected
