"""Backtest runs that can be repeated: build_patterns reads its bars as known at its start and
records that time and its code; ``rerun_backtest`` (and ``backtests/{id}/rerun/``) runs a stored
run again over exactly those bars, after a correction inside its period, and finds it
identical; a rerun that reads other bars, or a stored run altered, is reported different.

Transactional: each load's rows are known from its transaction's start, so the loads (and the
build) must commit apart for a correction to be later knowledge than the build."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from marketdata import demo
from marketdata.models import Instrument
from qvp_site.code_version import code_version
from qvp_site.db import partitions, roles
from tests.clients import client_of
from tests.knowledge import between_commits as _pause
from tests.vectors.bar_files import bars_csv, ingest_spy
from trading import reruns
from trading.models import BacktestRun, BacktestTrade
from vectors import bars, patterns

pytestmark = pytest.mark.django_db(transaction=True)

END = date(2024, 5, 17)  # a Friday
SESSIONS = 33  # 30 sessions of thirty-minute bars behind the first decision, then three


@pytest.fixture
def built(tmp_path):
    """SPY's bars loaded by ingest_bars, the patterns built, then one bar corrected by a later
    file: the close of the bar the first momentum trade entered at. Returns the momentum run,
    the bars and the moment between the build and the correction."""
    minute = demo.generate(demo.DEMO_SYMBOLS["SPY"], END, SESSIONS, seed=7)
    partitions.prepare_load("marketdata_minutebar", *demo.time_range(minute))
    assert "inserted" in ingest_spy(tmp_path, "first.csv", bars_csv(minute, {}))
    before_build = _pause()
    patterns.build(Instrument.objects.filter(symbol="SPY"))
    run = BacktestRun.objects.get(strategy="momentum-1h", parameters__symbol="SPY")
    entry = BacktestTrade.objects.filter(run=run).order_by("ts", "id").first()
    assert entry is not None
    # The entry's price is the close of the bar that closed at the decision.
    where = int(np.flatnonzero(minute.ts == np.datetime64(entry.ts.replace(tzinfo=None)))[0]) - 1
    between = _pause()
    out = ingest_spy(
        tmp_path, "corrected.csv", bars_csv(minute, {where: float(entry.price) * 1.02})
    )
    assert "0 inserted, 1 revised" in out
    return run, before_build, between


def test_a_build_records_what_it_knew_and_reads_it_again_after_a_correction(built):
    run, before_build, between = built
    runs = BacktestRun.objects.filter(parameters__made_by=patterns.MADE_BY)
    assert runs.count() >= 2
    for each in runs:
        # The build's start, on the database's clock: after the load, before the correction.
        assert before_build < each.known_at < between
        assert each.code_version == code_version()
        report = reruns.rerun(each)
        assert report.identical, report.differences
        assert report.trades_rerun == report.trades_stored > 0
        assert report.exact
        assert report.code_changed is False

    out = StringIO()
    call_command("rerun_backtest", str(run.pk), stdout=out)
    assert "identical: the same trades and metrics" in out.getvalue()
    assert "code version: the same" in out.getvalue()

    # The bars read as known then, and as known now, differ by the correction alone.
    instrument = Instrument.objects.get(symbol="SPY")
    then = bars.load(instrument.id, known_at=run.known_at)
    now = bars.load(instrument.id)
    assert len(then) == len(now)
    assert (then.close != now.close).sum() == 1


def test_an_incremental_build_is_repeated_from_its_since(built):
    run, _, _ = built
    since = run.period_start + timedelta(days=1)
    spy = Instrument.objects.filter(symbol="SPY")
    with pytest.raises(ValueError, match="is not settled yet"):
        patterns.build(spy, known_at=timezone.now() + timedelta(hours=1))
    patterns.build(spy, since=since)
    runs = BacktestRun.objects.filter(parameters__made_by=patterns.MADE_BY)
    assert runs.exists()
    for each in runs:
        assert each.parameters["since"] == since.isoformat()
        assert each.period_start >= since
        report = reruns.rerun(each)
        assert report.identical, report.differences


def test_a_rerun_that_reads_other_bars_or_a_stored_run_altered_differs(built):
    run, _, between = built
    # As known now: the corrected entry price.
    report = reruns.rerun(run, known_at=timezone.now())
    assert not report.identical
    assert not report.exact
    assert report.differences[0].startswith("total_return: stored")
    assert any(d.startswith("trade 1 (") and "price stored" in d for d in report.differences)
    out = StringIO()
    with pytest.raises(CommandError, match="differs from the stored run"):
        call_command("rerun_backtest", str(run.pk), "--known-at", timezone.now().isoformat(),
                     stdout=out)  # fmt: skip
    assert "different:" in out.getvalue()
    # As known between the build and the correction: the build's own bars.
    assert reruns.rerun(run, known_at=between).identical

    # A stored trade altered by a hundred-millionth, then a metric: each is found.
    last = BacktestTrade.objects.filter(run=run).order_by("ts", "id").last()
    BacktestTrade.objects.filter(pk=last.pk).update(fee=last.fee + Decimal("0.00000001"))
    report = reruns.rerun(run)
    assert [d for d in report.differences if "fee stored" in d] == report.differences
    BacktestTrade.objects.filter(pk=last.pk).update(fee=last.fee)
    BacktestRun.objects.filter(pk=run.pk).update(sharpe=run.sharpe + 1e-12)
    assert reruns.rerun(BacktestRun.objects.get(pk=run.pk)).differences == [
        f"sharpe: stored {run.sharpe + 1e-12!r}, rerun {run.sharpe!r}"
    ]


def test_runs_that_cannot_be_repeated_are_refused_naming_why(built, django_user_model):
    run, _, _ = built
    unknown = BacktestRun.objects.create(
        strategy="my-own",
        parameters=run.parameters,
        period_start=run.period_start,
        period_end=run.period_end,
        known_at=run.known_at,
    )
    elsewhere = BacktestRun.objects.create(
        strategy="momentum-1h",
        period_start=run.period_start,
        period_end=run.period_end,
        known_at=run.known_at,
    )
    unknown_time = BacktestRun.objects.create(
        strategy="momentum-1h",
        parameters=run.parameters,
        period_start=run.period_start,
        period_end=run.period_end,
    )
    other_rules = BacktestRun.objects.create(
        strategy="momentum-1h",
        parameters={**run.parameters, "horizon_minutes": 30},
        period_start=run.period_start,
        period_end=run.period_end,
        known_at=run.known_at,
    )
    for refused, field, words in (
        (unknown, "strategy", "'my-own' is not one of the rules of build_patterns"),
        (elsewhere, "parameters", "not by a strategy QVP can rerun"),
        (unknown_time, "known_at", "records no known_at"),
        (other_rules, "parameters", "parameters.horizon_minutes is 30 where this code runs 60"),
    ):
        with pytest.raises(CommandError, match=f"^{field}: .*{words}"):
            call_command("rerun_backtest", str(refused.pk), stdout=StringIO())

    stored = (BacktestRun.objects.count(), BacktestTrade.objects.count())
    # The API: reading rights suffice (a rerun writes nothing), so an auditor reruns.
    auditor = django_user_model.objects.create_user("audrey")
    auditor.groups.add(Group.objects.get(name="auditors"))
    api = client_of(auditor)
    answer = api.post(f"/api/v1/backtests/{run.pk}/rerun/", {}, format="json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["identical"], body["differences"], body["code_changed"]) == (True, [], False)
    assert body["trades_rerun"] == body["trades_stored"] == run.trades.count()
    answer = api.post(
        f"/api/v1/backtests/{run.pk}/rerun/",
        {"known_at": timezone.now().isoformat()},
        format="json",
    )
    assert answer.json()["identical"] is False
    answer = api.post(f"/api/v1/backtests/{unknown_time.pk}/rerun/", {}, format="json")
    assert answer.status_code == 400
    assert list(answer.json()) == ["known_at"]
    answer = api.post(f"/api/v1/backtests/{run.pk}/rerun/", {"known_at": "soon"}, format="json")
    assert (answer.status_code, list(answer.json())) == (400, ["known_at"])
    assert APIClient().post(f"/api/v1/backtests/{run.pk}/rerun/").status_code in (401, 403)
    # Nothing written: the runs and trades are as they were.
    assert (BacktestRun.objects.count(), BacktestTrade.objects.count()) == stored


def test_the_application_role_builds_and_reruns(built, app_role_password):
    """As the served site and the scheduler run: the role reads bars as known at a time (the
    revisions included) and the settled moment, and writes the runs."""
    run, _, _ = built
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {roles.APP_ROLE}")
        assert reruns.rerun(run).identical
        patterns.build(Instrument.objects.filter(symbol="SPY"))
        again = BacktestRun.objects.get(strategy="momentum-1h", parameters__symbol="SPY")
        assert reruns.rerun(again).identical
