"""``asof.arrow`` on several connections at once (``workers``), from the side that would break
it: the parts together are the queryset's rows, each once, on several instruments; under the
app role with a user declared each part sees only that user's rows; the parts read one
snapshot (a row committed between the first part's start and the others' is in none); what
cannot be split (ordered, grouped, distinct, sliced) is read whole or refused by name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count

from marketdata.models import Instrument, Tick
from qvp_site.acting import declare
from qvp_site.db import asof
from qvp_site.db.asof import arrow, split
from qvp_site.db.roles import APP_ROLE
from tests.fixtures.trading import fill, make_order
from tests.marketdata.conftest import START


@pytest.fixture
def fills_on_three_instruments(transactional_db, desks) -> dict:
    """Three instruments with a quote a minute; 12 fills in each desk's account spread over
    the instruments and the minutes (committed: the reader sees only what is)."""
    partitions_for_ticks()
    instruments = [
        Instrument.objects.create(symbol=f"PAR{n}", asset_class="equity") for n in range(3)
    ]
    Tick.objects.bulk_create(
        Tick(instrument=i, ts=START + timedelta(minutes=m), sequence=1, kind="quote",
             bid=10 * n + m + 1, ask=10 * n + m + 2)
        for n, i in enumerate(instruments) for m in range(6)
    )  # fmt: skip
    fills: dict[str, list] = {"alpha": [], "beta": []}
    for name in fills:
        orders = [make_order(desks[name], i) for i in instruments]
        for n in range(12):
            at = START + timedelta(minutes=n % 6, seconds=30)
            fills[name].append(fill(orders[n % 3], 1, "10", at=at))
    return fills


def partitions_for_ticks() -> None:
    from qvp_site.db import partitions

    partitions.prepare_load("marketdata_tick", START - timedelta(days=1), START + timedelta(days=1))


def _joined():
    from trading.models import Execution

    return (
        Execution.objects.order_by()
        .asof(Tick.objects.quotes(), time="executed_at", columns=["id", "bid", "ask"])
        .values_list("id", "instrument_id", "asof_id", "asof_bid", "asof_ask")
    )


def _rows(table) -> list[tuple]:
    return sorted(zip(*table.to_pydict().values(), strict=True))


def test_the_parts_are_the_querysets_rows_each_once(fills_on_three_instruments):
    expected = sorted(_joined())
    assert len(expected) == 24
    assert all(row[2] is not None for row in expected)  # every fill found its quote
    parts = split(_joined(), 2)
    assert [len(p) for p in parts] == [12, 12]  # balanced, disjoint
    one = arrow(_joined(), workers=1)
    two = arrow(_joined(), workers=2)
    assert _rows(one) == _rows(two) == expected
    assert two.column_names == one.column_names
    assert _rows(arrow(_joined(), workers=3)) == expected
    assert len({row[1] for row in expected}) == 3


def test_each_part_reads_as_the_app_role_and_the_declared_user(
    fills_on_three_instruments, desks, app_role_password
):
    """Under the app role with bob declared: bob's desk's (beta's) 12 fills alone, from both
    parts, as the queryset reads them."""
    beta = sorted(f.id for f in fills_on_three_instruments["beta"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {APP_ROLE}")
        declare(desks["bob"])
        expected = sorted(_joined())
        table = arrow(_joined(), workers=2)
    assert [row[0] for row in expected] == beta
    assert _rows(table) == expected


def test_the_parts_read_one_snapshot(fills_on_three_instruments, desks, monkeypatch):
    """A fill committed after the first part's snapshot is taken and before the second part
    imports it: in no part (the second part, reading on its own, would see it)."""
    order = make_order(desks["alpha"], Instrument.objects.get(symbol="PAR0"))
    before = sorted(_joined())
    late: list[int] = []
    exported = asof._exported

    def export_then_commit(reading_connection):
        snapshot = exported(reading_connection)
        late.append(fill(order, 1, "10", at=START + timedelta(seconds=30)).id)
        late.append(fill(order, 1, "10", at=START + timedelta(seconds=31)).id)  # both parts
        return snapshot

    monkeypatch.setattr(asof, "_exported", export_then_commit)
    table = arrow(_joined(), workers=2)
    assert _rows(table) == before
    assert {late[0] % 2, late[1] % 2} == {0, 1}
    assert len(list(_joined())) == len(before) + 2  # committed: seen by a later read


def test_an_ordered_queryset_is_read_whole_in_its_order(fills_on_three_instruments):
    ordered = _joined().order_by("-id")
    assert split(ordered) == [ordered]
    assert arrow(ordered).column("id").to_pylist() == [row[0] for row in ordered]
    with pytest.raises(ValueError, match=r"workers=2: .*ordered"):
        arrow(ordered, workers=2)


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (lambda qs: qs.values("instrument_id").annotate(n=Count("id")), "grouped"),
        (lambda qs: qs.values_list("instrument_id").distinct(), "distinct"),
        (lambda qs: qs[:5], "sliced"),
    ],
)
def test_what_cannot_be_split_is_read_whole_or_refused(fills_on_three_instruments, shape, reason):
    queryset = shape(_joined())
    assert len(split(queryset)) == 1
    assert len(arrow(queryset)) == len(list(queryset))
    with pytest.raises(ValueError, match=reason):
        arrow(queryset, workers=2)


@pytest.mark.parametrize("workers", [0, -1, True, "2", 1.5])
def test_bad_workers_are_refused_by_name(db, workers):
    with pytest.raises(ValueError, match="workers must be"):
        arrow(Instrument.objects.order_by(), workers=workers)


def test_negative_keys_fall_in_a_part(transactional_db):
    """PostgreSQL's remainder of a negative key is negative: no part would take it without
    the absolute value."""
    for pk in (-5, -4, -3, 7):
        Instrument.objects.create(id=pk, symbol=f"NEG{pk + 10}", asset_class="equity")
    ids = Instrument.objects.order_by().values_list("id")
    assert sorted(arrow(ids, workers=2).column("id").to_pylist()) == [-5, -4, -3, 7]
    assert sorted(arrow(ids, workers=3).column("id").to_pylist()) == [-5, -4, -3, 7]
