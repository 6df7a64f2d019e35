"""Signals and bars written through the client in batches: a refusal names each bad item by
its index in the list given (across batches) and its field; nothing of a refused batch is
written; a batch written again is left as it was."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from qvp_client import BatchRefused, Refused

from marketdata.models import MinuteBar
from signals.models import Signal
from tests.client.conftest import START


def signal(minutes: int, **changes) -> dict:
    return {
        "agent": "momentum_agent",
        "symbol": "AAPL",
        "ts": START + timedelta(minutes=minutes),
        "strength": 0.4,
        "confidence": 0.7,
        "horizon": timedelta(days=1),
        "explanation": {"reason": "20-day return above 0"},
        **changes,
    }


def test_a_signal_batch_with_a_bad_item_raises_naming_its_index_and_field(qvp):
    batch = [signal(0), signal(1, confidence=1.5), signal(2)]
    with pytest.raises(Refused) as refused:
        qvp.post_signals(batch)
    (problem,) = refused.value.problems
    assert (problem.index, problem.field) == (1, "confidence")
    assert "item 1: confidence:" in str(refused.value)
    assert not Signal.objects.exists()  # the batch refused whole

    written = qvp.post_signals(batch[:1] + batch[2:])
    assert (written.created, written.unchanged) == (2, 0)
    again = qvp.post_signals(pd.DataFrame(batch[:1] + batch[2:]))  # a DataFrame too
    assert (again.created, again.unchanged) == (0, 2)


def test_a_refusal_in_a_later_batch_names_the_index_in_the_whole_list(qvp):
    batch = [signal(n) for n in range(5)]
    batch[3]["symbol"] = "NOPE"
    with pytest.raises(BatchRefused) as refused:
        qvp.post_signals(batch, batch_size=2)
    assert [(p.index, p.field) for p in refused.value.problems] == [(3, "symbol")]
    assert refused.value.written == 2  # the first batch went in
    assert Signal.objects.count() == 2
    # The whole list again, corrected: the first two left as they were.
    batch[3]["symbol"] = "AAPL"
    written = qvp.post_signals(batch, batch_size=2)
    assert (written.created, written.unchanged) == (3, 2)


def test_bars_are_written_in_batches_and_a_bad_bar_is_named(qvp):
    later = START + timedelta(days=3)
    bars = [
        {"ts": later + timedelta(minutes=n), "open": 10, "high": 11, "low": 9, "close": 10.5}
        for n in range(5)
    ]
    MinuteBar.objects.filter(ts__gte=later).delete()
    written = qvp.post_bars("AAPL", bars, batch_size=2)
    assert (written.rows, written.inserted, len(written.ingests)) == (5, 5, 3)

    bars[4] = {**bars[4], "high": 8}
    with pytest.raises(Refused) as refused:
        qvp.post_bars("AAPL", bars, batch_size=2)
    assert [(p.index, p.field) for p in refused.value.problems] == [(4, "high")]
