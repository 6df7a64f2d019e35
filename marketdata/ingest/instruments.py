"""Which instrument a load's symbol names: the one that bore it on the rows' dates.

A file of ``FB`` bars from 2020 belongs to the instrument now called META; a file whose first
and last rows fall either side of a ticker's reuse belongs to no single instrument and is
refused naming both. A symbol no instrument ever bore creates one (a new listing), where the
load may create one; a symbol borne by some instrument at other dates only is refused naming
the candidates, rather than a second instrument made silently.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import IntegrityError, transaction

from marketdata import security_master
from marketdata.models import Instrument, Listing
from qvp_site.loading.refusals import IngestRefused


class SymbolRefused(IngestRefused):
    """A load refused because its symbol names no single instrument on its rows' dates."""


def rows_instrument(
    symbol: str, first: datetime, last: datetime, *, create: dict[str, str] | None
) -> tuple[Instrument, bool]:
    """The instrument that bore ``symbol`` from the first row's date to the last's, and
    whether it was created (with ``create``'s fields; None: never created)."""
    start, end = _utc_date(first), _utc_date(last)
    found = _bearer(symbol, start)
    later = found if end == start else _bearer(symbol, end)
    if isinstance(found, Instrument) and isinstance(later, Instrument):
        if found.id == later.id:
            return found, False
        raise SymbolRefused(
            f"{symbol} names two instruments over the rows' dates: instrument {found.id}"
            f" (now {found.symbol}) on {start} and instrument {later.id} (now {later.symbol})"
            f" on {end}; load each one's rows separately"
        )
    problems = [p for p in (found, later) if isinstance(p, str)]
    if create is None or _ever_borne(symbol):
        raise SymbolRefused("; ".join(dict.fromkeys(problems)))
    return _created(symbol, create), True


def _bearer(symbol: str, on: date) -> Instrument | str:
    """The instrument that bore ``symbol`` on ``on``, else the problem's message."""
    try:
        return security_master.resolve(symbol, on)
    except security_master.SymbolNotResolved as error:
        return str(error)


def _ever_borne(symbol: str) -> bool:
    return Listing.objects.filter(symbol=symbol, known_until__isnull=True).exists()


def _created(symbol: str, fields: dict[str, str]) -> Instrument:
    """A new instrument for a symbol never borne; a load that made it at the same time wins
    the race and its instrument is this one's."""
    try:
        with transaction.atomic():
            return Instrument.objects.create(symbol=symbol, **fields)
    except IntegrityError:
        return Instrument.objects.get(symbol=symbol, active=True)


def _utc_date(moment: datetime) -> date:
    """The date a row's time falls on: its UTC date, as the API reads a time's."""
    return moment.astimezone(UTC).date()
