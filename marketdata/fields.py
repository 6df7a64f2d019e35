"""Instruments named by symbol in the API (query parameters, bodies) and the commands that
read symbols the same way (``fuse_signals --symbols``).

A symbol names an instrument only on a date (a company renamed, a ticker reused by another, a
delisting): ``SymbolField`` and ``SymbolListField`` read the text, and the serializer that
declares them (a ``ResolvesSymbols``) resolves it once its other fields are read (before
``validate``), on the request's date: ``start`` for range reads, else ``as_of``, else today.
An unknown or ambiguous symbol is a 400 on the field, naming the symbol, the date and the
candidates (``marketdata.security_master``, one statement per field). Answers that echo a
symbol echo the one asked, which is the instrument's symbol on that date (``asked_symbol``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from django.db import connection
from rest_framework import serializers

from marketdata import security_master
from marketdata.models import Instrument

MAX_SYMBOLS = 1_000
# The attribute a resolved Instrument keeps the symbol it was asked by under (not a column).
_ASKED = "_asked_symbol"


class SymbolField(serializers.CharField):
    """An instrument's symbol: the text, resolved to the Instrument by the serializer on its
    date (``ResolvesSymbols``)."""

    def bind(self, field_name: str, parent: Any) -> None:
        # A symbol without a date is a bug of the serializer, found when it is first built.
        if not isinstance(parent, ResolvesSymbols):
            raise TypeError(
                f"{type(parent).__name__}.{field_name}: declare it on a ResolvesSymbols"
            )
        super().bind(field_name, parent)


class SymbolListField(SymbolField):
    """Comma-separated symbols: validated to the texts (each once, in the order given), then
    resolved to their Instruments in that order."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        text = super().run_validation(data)
        if text is None:
            return None
        return symbol_list(text)


def symbol_list(text: str) -> list[str]:
    """The symbols of a comma-separated list, each once, in order; 1 to MAX_SYMBOLS of them."""
    symbols = [s for s in dict.fromkeys(part.strip() for part in text.split(",")) if s]
    if not symbols or len(symbols) > MAX_SYMBOLS:
        raise serializers.ValidationError(f"give 1 to {MAX_SYMBOLS} symbols, comma-separated")
    return symbols


class ResolvesSymbols(serializers.Serializer[Any]):
    """A serializer whose symbol fields resolve on its date: the first of ``symbols_dated_by``
    given (a time, read as its UTC date, or a date), else today."""

    symbols_dated_by: tuple[str, ...] = ("start", "as_of")

    def to_internal_value(self, data: Any) -> Any:
        # Once every field is read (the date among them), before validate(): a subclass's
        # validate() sees instruments, whether or not it calls its parent's.
        attrs = super().to_internal_value(data)
        on = self.symbols_date(attrs)
        for name, field in self.fields.items():
            # Symbol fields keep their own names (no source): validated_data[name] is theirs.
            if isinstance(field, SymbolField) and attrs.get(name) is not None:
                attrs[name] = _resolved(name, attrs[name], on)
        return attrs

    def symbols_date(self, attrs: dict[str, Any]) -> date:
        for name in self.symbols_dated_by:
            value = attrs.get(name)
            if value is not None:
                return as_date(value)
        return security_master.today()


def as_date(value: date | datetime) -> date:
    """The date a time falls on in UTC (the data's calendar); a date as it is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    return value


def _resolved(name: str, value: str | list[str], on: date) -> Instrument | list[Instrument]:
    symbols = [value] if isinstance(value, str) else value
    try:
        found = resolve_asked(symbols, on)
    except security_master.SymbolNotResolved as error:
        raise serializers.ValidationError({name: error.problems}) from error
    return found[0] if isinstance(value, str) else found


def resolve_asked(symbols: Sequence[str], on: date) -> list[Instrument]:
    """The instruments that bore ``symbols`` on ``on``, in order, in one statement
    (``security_master.resolve_many``); each remembers the symbol it was asked by
    (``asked_symbol``). Raises SymbolNotResolved naming every problem."""
    found = security_master.resolve_many(symbols, on)
    for symbol, instrument in found.items():
        setattr(instrument, _ASKED, symbol)
    return [found[symbol] for symbol in symbols]


def asked_symbol(instrument: Instrument) -> str:
    """The symbol a request named ``instrument`` by (its symbol on the request's date), else
    its symbol today."""
    asked: str = getattr(instrument, _ASKED, instrument.symbol)
    return asked


class SymbolRelatedField(serializers.SlugRelatedField[Instrument]):
    """A model serializer's instrument, written and shown as its symbol: written, it resolves
    to the instrument listed under it today (two instruments may share a symbol, one of them
    delisted); shown, it is the instrument's symbol today."""

    def to_internal_value(self, data: Any) -> Instrument:
        if not isinstance(data, str) or not data.strip() or "\x00" in data:
            raise serializers.ValidationError("must be a symbol")
        try:
            return security_master.resolve(data.strip())
        except security_master.SymbolNotResolved as error:
            raise serializers.ValidationError(error.problems) from error


def symbol_relation(**kwargs: Any) -> SymbolRelatedField:
    """A model serializer's instrument, written and shown as its symbol (resolved today)."""
    if not kwargs.get("read_only"):
        kwargs["queryset"] = Instrument.objects.all()
    return SymbolRelatedField(slug_field="symbol", help_text="the instrument's symbol", **kwargs)


def command_instruments(option: str, symbols: Sequence[str], on: date | None) -> list[Instrument]:
    """The instruments that bore a command's ``symbols`` on ``on`` (its --start or --as-of
    date; None: today), in order, in one statement; a CommandError naming the option and each
    problem (the symbol, the date, the candidates) otherwise."""
    from django.core.management.base import CommandError

    try:
        return resolve_asked(symbols, on or security_master.today())
    except security_master.SymbolNotResolved as error:
        raise CommandError(f"{option}: {error}") from error


# Each date's symbols resolved by the security master, in one statement for any number of
# dates: {"2020-01-15": ["FB", "XYZ"], ...}.
RESOLVE_DATED_SQL = """
SELECT d.key, r.symbol, r.instrument_id, r.problem
FROM jsonb_each(%s::jsonb) AS d
CROSS JOIN LATERAL marketdata_resolve_symbols(
    ARRAY(SELECT jsonb_array_elements_text(d.value)), d.key::date, NULL) AS r
"""


def resolve_dated(pairs: Iterable[tuple[str, date]]) -> dict[tuple[str, date], int | str]:
    """Each (symbol, date)'s instrument id, or the message of its problem (naming the symbol,
    the date and the candidates), in one statement: for rows that each carry their own date
    (a batch of signals)."""
    by_date: dict[str, set[str]] = {}
    for symbol, on in pairs:
        by_date.setdefault(on.isoformat(), set()).add(symbol)
    if not by_date:
        return {}
    wanted = {on: sorted(symbols) for on, symbols in by_date.items()}
    with connection.cursor() as cursor:
        cursor.execute(RESOLVE_DATED_SQL, [json.dumps(wanted)])
        rows = cursor.fetchall()
    return {
        (symbol, date.fromisoformat(on)): problem if problem is not None else instrument_id
        for on, symbol, instrument_id, problem in rows
    }
