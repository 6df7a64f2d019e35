"""Instruments with a stated history in the security master, for the tests of what resolves
on which date (tests/marketdata/test_security_master.py, test_symbol_doors.py, the attack
review's)."""

from __future__ import annotations

from datetime import date

from marketdata.models import Instrument, Listing
from marketdata.security_master import Terms, clear, set_terms


def listed(symbol: str, first: date | None, terms: Terms) -> Instrument:
    """A new instrument whose history starts on ``first`` with ``terms`` (the loaders' way:
    created inactive, its terms stated, the time before cleared)."""
    instrument = Instrument.objects.create(symbol=symbol, asset_class="equity", active=False)
    set_terms(instrument.id, first, None, terms)
    if first is not None:
        clear(instrument.id, None, first)
    instrument.refresh_from_db()
    return instrument


def current_versions(instrument: Instrument) -> list[tuple]:
    """The instrument's current history: (valid_from, valid_until, symbol, status) by date."""
    return list(
        Listing.objects.filter(instrument=instrument, known_until__isnull=True)
        .order_by("valid_from")
        .values_list("valid_from", "valid_until", "symbol", "status")
    )
