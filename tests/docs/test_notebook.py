"""docs/research.ipynb, run as a quant runs it: the demo data on the live test server, an API
token made by the command the notebook names, every cell executed in a kernel of this venv
(nbclient), and what the notebook found held to what the data says, computed here from the
database by other means (SQL, the risk and search modules)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path

import nbformat
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min
from nbclient import NotebookClient

from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.db.aggregates import refresh_table
from risk.var import value_at_risk
from tests.qvp_site.test_research_role import research_uri
from trading.models import Account, Position
from vectors import search
from vectors.models import VolatilityRegime

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "research.ipynb"
END = date(2024, 5, 17)  # a Friday: the demo's last trading day
DAYS = 80  # trading days: 16 of them with a regime signature (the first needs 64 before it)
AS_OF = datetime(2024, 5, 18, tzinfo=UTC)  # the notebook's end: the day after the newest bar
SYMBOLS = "AAPL,MSFT"  # demo-stat-arb's universe
CELL_TIMEOUT = 120  # seconds

# Appended to the notebook: what it found, as JSON on the last cell's output.
RESULTS_CELL = """
import json as _json

print(_json.dumps({
    "start": start.isoformat(),
    "end": end.isoformat(),
    "bars": len(bars),
    "first": bars["ts"].iloc[0].isoformat(),
    "last": bars["ts"].iloc[-1].isoformat(),
    "days": [d.date().isoformat() for d in daily.index],
    "closes": daily["close"].tolist(),
    "realised_vol": daily["realised_vol"].tolist(),
    "hours": len(hourly),
    "hourly_volume": int(hourly["volume"].sum()),
    "hourly_bars": int(hourly["bar_count"].sum()),
    "account": ACCOUNT,
    "positions": {r.instrument: str(r.quantity) for r in positions.itertuples()},
    "var": risk.reset_index().to_dict("records"),
    "current": regimes.current["id"],
    "similar": similar["id"].tolist(),
    "next_5d_return": similar["next_5d_return"].tolist(),
    "sql_bars": len(sql_bars),
    "sql_same": bool(same),
}))
"""

# Realised volatility by UTC day, computed in SQL: the one-minute log returns inside each day.
REALISED_SQL = """
SELECT day, sqrt(252 * sum(r * r)) FROM (
    SELECT b.ts::date AS day,
           ln(b.close / lag(b.close) OVER (PARTITION BY b.ts::date ORDER BY b.ts)) AS r
    FROM marketdata_minutebar b JOIN marketdata_instrument i ON i.id = b.instrument_id
    WHERE i.symbol = 'AAPL'
) AS minutes
GROUP BY day ORDER BY day
"""


def return_after(regime: VolatilityRegime, days: int = 5) -> float:
    """The regime's instrument's return over the ``days`` trading days after its day."""
    closes = list(
        DailyBar.objects.filter(instrument=regime.instrument_id, ts__gte=regime.period_start)
        .order_by("ts")
        .values_list("close", flat=True)[: days + 1]
    )
    return closes[days] / closes[0] - 1 if len(closes) > days else math.nan


@pytest.fixture
def demo(transactional_db, no_connection_left) -> Iterator[None]:
    """The demo's bars of AAPL and MSFT over 80 days, its accounts, executions and regimes,
    committed; after the test, the bars' buckets emptied from the aggregates too (the flush
    empties model tables only)."""
    call_command(
        "seed_demo", "--days", str(DAYS), "--symbols", SYMBOLS, "--end", END.isoformat(),
        stdout=StringIO(),
    )  # fmt: skip
    yield
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    MinuteBar.objects.all().delete()
    if span["first"] is not None:
        refresh_table("marketdata_minutebar", span["first"], span["last"])


@pytest.fixture
def analyst_token(demo) -> str:
    """The key of a token made as the notebook says, for a member of demo-stat-arb's desk:
    that account is the only one they see."""
    analyst = get_user_model().objects.create_user("analyst")
    analyst.groups.add(Group.objects.get(name="desk-stat-arb"))
    out = StringIO()
    call_command("api_token", "create", "analyst", "notebook", stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")


def executed(monkeypatch, tmp_path: Path, environment: dict[str, str]) -> dict:
    """Every cell of the notebook run in a fresh python3 kernel (it inherits the environment),
    then the results cell; its JSON, with ``without_sql``: what the SQL cell printed when run
    again without QVP_RESEARCH_URL, as for a quant with no database login. A cell that fails
    raises CellExecutionError."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    (sql_cell,) = [cell for cell in code if "QVP_RESEARCH_URL" in cell.source]
    notebook.cells += [
        nbformat.v4.new_code_cell(RESULTS_CELL),
        nbformat.v4.new_code_cell('os.environ.pop("QVP_RESEARCH_URL")'),
        nbformat.v4.new_code_cell(sql_cell.source),
    ]
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return {**json.loads(stdout(notebook.cells[-3])), "without_sql": stdout(notebook.cells[-1])}


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], cell.source[:60]
        assert cell.execution_count is None, cell.source[:60]


def test_the_notebook_runs_and_finds_what_the_data_says(
    live_server, analyst_token, research_role_password, monkeypatch, tmp_path
):
    found = executed(
        monkeypatch,
        tmp_path,
        {
            "QVP_URL": live_server.url,
            "QVP_API_TOKEN": analyst_token,
            "QVP_RESEARCH_URL": research_uri(research_role_password),
        },
    )

    # A year up to the newest bar: the 80 days of minute bars, every one of them.
    minutes = MinuteBar.objects.filter(instrument__symbol="AAPL")
    assert (found["start"], found["end"]) == (
        "2023-05-19T00:00:00+00:00",
        "2024-05-18T00:00:00+00:00",
    )
    assert found["bars"] == minutes.count() == DAYS * 390
    span = minutes.aggregate(first=Min("ts"), last=Max("ts"))
    assert (found["first"], found["last"]) == (
        span["first"].isoformat(),
        span["last"].isoformat(),
    )

    # Daily closes: the daily bars' (the demo makes them from the minutes); realised
    # volatility: the same from SQL.
    daily = DailyBar.objects.filter(instrument__symbol="AAPL").order_by("ts")
    assert found["days"] == [bar.ts.date().isoformat() for bar in daily]
    assert found["closes"] == pytest.approx([bar.close for bar in daily], rel=1e-12)
    with connection.cursor() as cursor:
        cursor.execute(REALISED_SQL)
        realised = cursor.fetchall()
    assert found["realised_vol"] == pytest.approx([v for _, v in realised], rel=1e-9)
    assert all(0.01 < v < 5 for v in found["realised_vol"])

    # Hourly buckets hold every bar and its volume: a session of 6.5 hours starts 7 buckets.
    assert found["hours"] == DAYS * 7
    assert found["hourly_bars"] == DAYS * 390
    assert found["hourly_volume"] == sum(minutes.values_list("volume", flat=True))

    # The one account the analyst sees, its positions and VaR as the risk module finds them.
    account = Account.objects.get(name="demo-stat-arb")
    assert found["account"] == account.id
    held = Position.objects.filter(account=account).select_related("instrument")
    assert found["positions"] == {p.instrument.symbol: str(p.quantity) for p in held}
    assert 0 < len(found["positions"]) <= 2
    assert set(found["positions"]) <= {"AAPL", "MSFT"}
    for row in found["var"]:
        (expected,) = value_at_risk(
            account.id, methods=(row["method"],), confidence=0.99, lookback=252, as_of=AS_OF
        )
        assert row["observations"] == expected.observations == DAYS - 1, row
        assert row["var"] == pytest.approx(expected.var, rel=1e-9), row
        assert row["cvar"] == pytest.approx(expected.cvar, rel=1e-9), row
        assert row["portfolio_value"] == pytest.approx(expected.portfolio_value, rel=1e-9)
        assert 0 < row["var"] <= row["cvar"], row
    assert [row["method"] for row in found["var"]] == ["historical", "parametric", "monte_carlo"]

    # AAPL's latest regime and the ten days nearest it, of either symbol; what followed each
    # from the daily bars (none yet for the last five days).
    current = search.current_regime(Instrument.objects.get(symbol="AAPL"))
    assert current is not None
    assert found["current"] == current.id
    assert found["similar"] == [m.regime.id for m in search.similar_regimes(current, 10)]
    assert current.id not in found["similar"]
    similar = VolatilityRegime.objects.in_bulk(found["similar"])
    expected = [return_after(similar[i]) for i in found["similar"]]
    assert sum(not math.isnan(r) for r in expected) > 0
    assert found["next_5d_return"] == pytest.approx(expected, rel=1e-9, nan_ok=True)

    # The same bars from SQL as qvp_research, equal to the API's; without a login, none.
    assert (found["sql_bars"], found["sql_same"]) == (DAYS * 390, True)
    assert found["without_sql"] == "QVP_RESEARCH_URL is not set: no SQL\n"
