"""The signals admin: every changelist and change page opens; records are read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from signals.models import Signal, SocialSentiment, SystemLog
from tests.signals.conftest import START

MODELS = [
    "agent",
    "signal",
    "fusedsignal",
    "signalperformance",
    "modelperformance",
    "newsarticle",
    "socialsentiment",
    "alternativedata",
    "agentmetric",
    "systemlog",
]


@pytest.fixture
def rows(partitioned, aapl, momentum):
    signal = Signal.objects.create(
        agent=momentum, instrument=aapl, ts=START, direction=1, strength=0.5, confidence=0.9,
        horizon=timedelta(days=1), explanation={"reason": "trend"},
    )  # fmt: skip
    return {"signal": signal}


@pytest.mark.parametrize("model", MODELS)
def test_changelists_open(admin_client, rows, model):
    assert admin_client.get(f"/admin/signals/{model}/").status_code == 200


def test_a_signal_is_viewed_not_changed(admin_client, rows):
    url = f"/admin/signals/signal/{rows['signal'].pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "trend" in page.content.decode()
    assert admin_client.get("/admin/signals/signal/add/").status_code == 403
    assert admin_client.post(url, {"strength": "-1"}).status_code == 403
    assert Signal.objects.get().strength == 0.5


def test_system_logs_are_searchable(admin_client, db):
    SystemLog.objects.create(ts=timezone.now(), level="ERROR", logger="x", message="m")
    assert admin_client.get("/admin/signals/systemlog/", {"level": "ERROR"}).status_code == 200


def test_a_sentiment_is_changed_but_stays_about_its_instrument(
    admin_client, partitioned, aapl, msft
):
    """Its instrument is read-only once stored, and a change is saved without it: on Citus the
    instrument places the row on its shard, and Citus refuses an UPDATE that sets it."""
    row = SocialSentiment.objects.create(
        instrument=aapl, ts=START, platform="reddit", sentiment=0.2, mentions=10
    )
    url = f"/admin/signals/socialsentiment/{row.pk}/change/"
    assert 'name="instrument"' not in admin_client.get(url).content.decode()
    form = {
        "instrument": msft.pk,  # not a field of the form: ignored
        "ts_0": START.date().isoformat(),
        "ts_1": START.time().isoformat(),
        "platform": "stocktwits",
        "sentiment": "-0.4",
        "mentions": "12",
        "bullish": "1",
        "bearish": "3",
    }
    assert admin_client.post(url, form).status_code == 302
    row.refresh_from_db()
    assert (row.instrument_id, row.platform, row.sentiment, row.mentions) == (
        aapl.pk, "stocktwits", -0.4, 12,
    )  # fmt: skip
    # A new reading still names its instrument.
    assert (
        'name="instrument"'
        in admin_client.get("/admin/signals/socialsentiment/add/").content.decode()
    )
