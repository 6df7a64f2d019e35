"""The dashboard on an empty database (outside tests/dashboard, whose demo data is committed
for the whole package): pages, not errors, for a user with nothing to see yet."""

from __future__ import annotations

import pytest

from marketdata.models import Instrument
from tests.clients import client_of


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/", "No open positions."),
        ("/portfolio/", "No portfolio snapshots yet"),
        ("/risk/", "No open alerts."),
        ("/signals/", "No fused signals yet"),
        ("/tca/", "No execution costs yet"),
        ("/instruments/", "No instruments yet"),
    ],
)
def test_every_page_says_what_is_missing(db, django_user_model, path, says):
    newcomer = client_of(django_user_model.objects.create_user("newcomer"))
    response = newcomer.get(path)
    assert response.status_code == 200
    assert says in response.content.decode()


def test_an_instrument_without_bars_or_regimes(db, django_user_model):
    Instrument.objects.create(symbol="NEW", asset_class="equity")
    staff = client_of(django_user_model.objects.create_user("ops", is_staff=True))
    html = staff.get("/instruments/NEW/").content.decode()
    assert "No bars for this instrument yet." in html
    assert "No regime signatures for NEW yet" in html
    assert "No volatility estimates yet" in html
    assert staff.get("/system/").status_code == 200
