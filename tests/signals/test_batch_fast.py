"""A batch of signals checked by the database (``signals.batches``): well-formed items never
meet the serializer; whatever the form of an item, what is stored is what the serializer makes
of it; a bad item is refused naming its index and field, wherever it is in the batch and
whichever road (the database's checks or the serializer) found it, and nothing is written."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework import serializers

from signals import batches
from signals.api import SignalSerializer
from signals.models import Agent, Signal
from tests.clients import client_of
from tests.signals.test_api import WRITES, item, user_with

URL = "/api/v1/signals/"


@pytest.fixture
def world(partitioned, aapl, msft, momentum, reversion):
    return {"aapl": aapl, "msft": msft, "momentum": momentum, "reversion": reversion}


@pytest.fixture
def writer(db):
    return client_of(user_with("writer", *WRITES))


@pytest.fixture
def no_serializer(monkeypatch):
    """The serializer refuses to read any item: a batch that needs it fails the test."""

    def refused(self, data):
        raise AssertionError("the serializer read an item")

    monkeypatch.setattr(SignalSerializer, "run_validation", refused)


def stored() -> list[tuple]:
    return list(
        Signal.objects.order_by("ts", "agent__name", "instrument__symbol").values_list(
            "agent__name", "instrument__symbol", "ts", "direction", "strength", "confidence",
            "horizon", "explanation",
        )
    )  # fmt: skip


def test_well_formed_items_are_checked_and_written_without_the_serializer(
    world, writer, no_serializer
):
    batch = [item(minutes=k, symbol="AAPL" if k % 2 else "MSFT") for k in range(500)]
    batch[3] = item(minutes=3, symbol="AAPL", strength=-0.25, direction=-1, horizon="P2D")
    batch[5] = item(ts=datetime(2024, 5, 14, 9, 5).isoformat())  # no offset: UTC
    response = writer.post(URL, batch, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"created": 500, "unchanged": 0}
    third = Signal.objects.get(ts=datetime(2024, 5, 13, 14, 3, tzinfo=UTC))
    assert (third.direction, third.strength, third.horizon) == (-1, -0.25, timedelta(days=2))
    assert Signal.objects.filter(ts=datetime(2024, 5, 14, 9, 5, tzinfo=UTC)).exists()


# Items in every form the serializer reads: typed by the database, or read by the serializer
# (numbers as text, names with spaces around them, a date alone, a time in another zone, a
# horizon of hours in ISO 8601, microseconds...).
FORMS: list[dict[str, Any]] = [
    {},
    {"strength": "0.4", "confidence": "0.70"},
    {"agent": "  momentum_agent\u3000", "symbol": "\tMSFT "},
    {"ts": "2024-05-14"},
    {"ts": "2024-05-13T16:30:00.5+02:00"},
    {"ts": "2024-05-13T14:00:00.123456Z", "symbol": "MSFT"},
    {"ts": "2024-05-13 14:00:01"},
    {"horizon": "PT36H"},
    {"horizon": "1 day, 02:00:00"},
    {"horizon": "00:30:00.25"},
    {"horizon": 3600},
    {"direction": "1", "strength": 1},
    {"direction": 1.0, "strength": True},
    {"strength": -1e-300, "direction": -1},
    {"strength": 0, "confidence": 0},
    {"agent": "reversion_agent", "explanation": {"x": [1, 2.5, None, "é"], "y": {"z": 1e21}}},
]


def test_each_form_is_stored_as_the_serializer_reads_it(world, writer):
    batch = [item(minutes=k, **form) for k, form in enumerate(FORMS)]
    child = SignalSerializer()
    expected = []
    for raw in batch:
        valid = child.run_validation(raw)
        expected.append(
            (valid["agent"], valid["symbol"], valid["ts"], valid["direction"], valid["strength"],
             valid["confidence"], valid["horizon"], valid["explanation"])
        )  # fmt: skip
    response = writer.post(URL, batch, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["created"] == len(FORMS)
    assert stored() == sorted(expected, key=lambda r: (r[2], r[0], r[1]))


def test_the_serializers_values_stage_typed(world):
    """What the serializer makes of any item is staged again in its typed form: it must read
    back typed, to the same values."""
    child = SignalSerializer()
    for k, form in enumerate(FORMS):
        valid = child.run_validation(item(minutes=k, **form))
        result = batches.write([batches.canonical(valid)])
        assert result.problems == [], (form, result.problems)
    assert Signal.objects.count() == len(FORMS)


def test_a_bad_item_at_the_end_of_a_full_batch_is_named_and_nothing_is_written(
    world, writer, no_serializer
):
    batch = [item(minutes=k) for k in range(10_000)]
    batch[9_999]["symbol"] = "ZZZZ"
    batch[4_321]["agent"] = "nobody"
    response = writer.post(URL, batch, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert errors == {
        "4321": {"agent": ["unknown agent 'nobody'"]},
        "9999": {"symbol": [errors["9999"]["symbol"][0]]},
    }
    assert errors["9999"]["symbol"][0].startswith("unknown symbol ZZZZ on 2024-05-")
    assert Signal.objects.count() == 0


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"ts": "2024-05-13T23:59:60Z"}, "ts", "Datetime has wrong format"),
        ({"ts": "2024-05-13T24:00:00Z"}, "ts", "Datetime has wrong format"),
        ({"ts": "1799-12-31T23:59:59Z"}, "ts", "must lie between 1800-01-01 and 3000-01-01"),
        ({"ts": "yesterday"}, "ts", "Datetime has wrong format"),
        ({"strength": 1.0000001}, "strength", "less than or equal to 1"),
        ({"strength": None}, "strength", "may not be null"),
        ({"confidence": -0.01}, "confidence", "greater than or equal to 0"),
        ({"direction": 0}, "direction", "is 0 while strength 0.4 says 1"),
        ({"direction": 2}, "direction", "less than or equal to 1"),
        ({"horizon": "367 00:00:00"}, "horizon", "must be positive and at most 366 days"),
        ({"horizon": "1 25:00:00"}, "horizon", ""),
        ({"horizon": "tomorrow"}, "horizon", "Duration has wrong format"),
        ({"agent": ""}, "agent", "may not be blank"),
        ({"agent": "x" * 101}, "agent", "no more than 100 characters"),
        ({"agent": ["momentum_agent"]}, "agent", "Not a valid string"),
        ({"symbol": {"s": "AAPL"}}, "symbol", "Not a valid string"),
        ({"direction": None}, "direction", "may not be null"),
        ({"explanation": None}, "explanation", "may not be null"),
        ({"explanation": "reasons"}, "explanation", "object"),
    ],
)
def test_a_bad_field_is_named_by_its_index_and_field(world, writer, changes, field, message):
    batch = [item(minutes=k) for k in range(3)]
    batch[1] = item(minutes=1, **changes)
    response = writer.post(URL, batch, format="json")
    errors = response.json()
    if response.status_code == 201:  # the serializer reads it (a horizon of 25 hours...)
        assert (field, message) == ("horizon", ""), errors
        return
    assert response.status_code == 400, errors
    assert list(errors) == ["1"], errors
    assert field in errors["1"], errors
    assert message in errors["1"][field][0]
    assert Signal.objects.count() == 0


def test_a_number_beyond_a_floats_range_is_named_not_a_500(world, writer):
    """Python's decoder reads 1e400 as infinity, which JSON cannot carry to the database."""
    # Item 0's strength, and a key the serializer ignores in item 1.
    first = json.dumps(item()).replace('"strength": 0.4', '"strength": 1e400')
    second = json.dumps(item(minutes=1)).replace('"confidence"', '"x": 1e400, "confidence"')
    body = f"[{first}, {second}]"
    response = writer.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["0"]
    assert "strength" in response.json()["0"]
    assert Signal.objects.count() == 0


def test_an_explanation_holding_a_number_beyond_json_is_named(world, writer):
    """1e400 reads as infinity in Python, which the serializer refuses (no JSON column holds
    it): a 400 naming the field, never the database's error."""
    body = json.dumps([item(), item(minutes=1)]).replace('"return_20d": 0.031', '"r": 1e400', 1)
    response = writer.post(URL, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json() == {"0": {"explanation": ["Value must be valid JSON."]}}
    assert Signal.objects.count() == 0


def test_items_that_are_not_objects_are_named_by_their_index(world, writer):
    response = writer.post(URL, [item(), 7, [item(minutes=1)], None], format="json")
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"1", "2", "3"}
    assert "Expected a dictionary" in str(errors["1"])
    assert Signal.objects.count() == 0


def test_repeats_are_found_across_both_roads(world, writer):
    """An item the serializer reads (strength as text) and a typed one with its agent, symbol
    and time: the later is the repeat, whichever road read the first."""
    first = item(strength="0.4")
    later = item(ts=item()["ts"].replace("+00:00", "Z"))
    response = writer.post(URL, [first, item(minutes=1), later], format="json")
    assert response.status_code == 400
    assert response.json() == {"2": {"ts": ["repeats the agent, symbol and time of item 0"]}}
    assert Signal.objects.count() == 0


def test_name_problems_of_typed_items_beside_field_problems_of_others(world, writer):
    Agent.objects.filter(name="reversion_agent").update(active=False)
    batch = [
        item(agent="reversion_agent"),
        item(minutes=1, confidence="high"),
        item(minutes=2, symbol="ZZZZ", agent="nobody"),
    ]
    errors = writer.post(URL, batch, format="json").json()
    assert errors["0"] == {"agent": ["agent 'reversion_agent' is not active"]}
    assert errors["1"] == {"confidence": ["A valid number is required."]}
    assert errors["2"]["agent"] == ["unknown agent 'nobody'"]
    assert errors["2"]["symbol"][0].startswith("unknown symbol ZZZZ on ")
    assert list(errors) == ["0", "1", "2"]
    assert Signal.objects.count() == 0


def test_a_batch_refused_as_the_application_role(world, writer, as_app_role):
    """As the served site runs: trading_app stages, checks and refuses (its TEMPORARY right)."""
    bad = writer.post(URL, [item(), item(minutes=1, symbol="ZZZZ")], format="json")
    assert bad.status_code == 400
    assert list(bad.json()) == ["1"]
    good = writer.post(URL, [item(), item(minutes=1, strength="0.5")], format="json")
    assert good.status_code == 201, good.json()
    assert good.json() == {"created": 2, "unchanged": 0}


def test_a_user_without_the_permission_stages_nothing(world, db, no_serializer):
    reader = client_of(user_with("reader"))
    assert reader.post(URL, [item()], format="json").status_code == 403
    assert Signal.objects.count() == 0


def test_the_trimmed_characters_are_pythons_whitespace():
    assert set(batches.WHITESPACE) == {
        c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()
    }


def test_a_batch_repeating_recorded_signals_is_unchanged(world, writer, no_serializer):
    batch = [item(minutes=k) for k in range(20)]
    assert writer.post(URL, batch, format="json").json() == {"created": 20, "unchanged": 0}
    again = writer.post(URL, [*batch, item(minutes=20)], format="json")
    assert again.status_code == 201
    assert again.json() == {"created": 1, "unchanged": 20}


def test_canonical_is_what_the_serializer_validated():
    valid = {
        "agent": "a", "symbol": "S", "ts": datetime(2024, 5, 13, 14, 0, 0, 5, tzinfo=UTC),
        "direction": 1, "strength": 0.5, "confidence": 1.0,
        "horizon": timedelta(days=3, seconds=5, microseconds=7), "explanation": {},
    }  # fmt: skip
    assert batches.canonical(valid) == {
        **valid,
        "ts": "2024-05-13T14:00:00.000005+00:00",
        "horizon": "3 00:00:05.000007",
    }
    with pytest.raises(serializers.ValidationError):
        SignalSerializer().run_validation({**batches.canonical(valid), "horizon": "0"})
