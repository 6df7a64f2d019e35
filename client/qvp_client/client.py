"""``Client``: QVP's API from Python, data as pandas, Polars or Arrow.

Large lists (bars, ticks, orders, executions, signals, ...) come through the API's Arrow
stream (``?format=arrow``): a range longer than the server's bulk limit is read in
consecutive chunks (``chunk``, 366 days by default, the server's default limit) and
concatenated in time order. Small answers (positions, VaR, the vector searches) come as JSON,
page after page. Writes go in batches; a refusal raises ``Refused`` naming each refused item
(its index in the list you gave) and field. See ``qvp_client.http`` for the retries.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypedDict, Unpack

import pyarrow as pa
import pyarrow.compute as pc

from qvp_client import errors
from qvp_client.encoding import plain, records
from qvp_client.frames import (
    TIMESTAMP,
    Column,
    Frame,
    Output,
    checked_output,
    concatenated,
    convert,
    decimal,
    frame_of,
)
from qvp_client.http import RetryPolicy, Transport
from qvp_client.progress import Progress, wanted
from qvp_client.ranges import DEFAULT_CHUNK, TICK_CHUNK, Moment, as_utc, chunks, iso
from qvp_client.streams import ARROW_STREAM, arrow_table

__version__ = "0.1.0"

TOKEN_VARIABLE = "QVP_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
# The most items the API takes in one batch (qvp_site/api/batches.py MAX_BATCH); batches are
# kept smaller by default so that one stays well under the server's body limit (10 MiB).
MAX_BATCH = 10_000
DEFAULT_BATCH = 5_000
Symbols = str | Sequence[str]

# The columns of the JSON answers turned into tables (the API's names and types).
POSITION_COLUMNS: list[Column] = [
    ("id", pa.int64()),
    ("account", pa.int64()),
    ("instrument", pa.string()),
    ("quantity", decimal(20, 8)),
    ("average_cost", decimal(28, 12)),
    ("realized_pnl", decimal(24, 8)),
    ("last_sequence", pa.int64()),
    ("last_execution_at", TIMESTAMP),
    ("updated_at", TIMESTAMP),
]
NEIGHBOUR_COLUMNS: list[Column] = [
    ("id", pa.int64()),
    ("symbol", pa.string()),
    ("ts", TIMESTAMP),
    ("distance", pa.float64()),
]
REGIME_COLUMNS: list[Column] = [
    ("id", pa.int64()),
    ("symbol", pa.string()),
    ("period_start", TIMESTAMP),
    ("period_end", TIMESTAMP),
    ("label", pa.string()),
    ("cluster", pa.int64()),
    ("distance", pa.float64()),
]
STRATEGY_COLUMNS: list[Column] = [
    ("strategy", pa.string()),
    ("patterns", pa.int64()),
    ("weight", pa.float64()),
    ("expected_return", pa.float64()),
    ("sharpe", pa.float64()),
    ("max_drawdown", pa.float64()),
    ("hit_rate", pa.float64()),
]
PATTERN_COLUMNS: list[Column] = [
    ("id", pa.int64()),
    ("strategy", pa.string()),
    ("symbol", pa.string()),
    ("ts", TIMESTAMP),
    ("position", pa.int64()),
    ("forward_return", pa.float64()),
    ("sharpe", pa.float64()),
    ("max_drawdown", pa.float64()),
    ("backtest_id", pa.int64()),
    ("distance", pa.float64()),
]
# How buckets split by a chunk's edge are put back together (the others: their first value).
BUCKET_MERGE = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
    "bar_count": "sum",
}


@dataclass(frozen=True)
class VaR:
    """Value at risk and CVaR of an account (losses, positive; None: too few days)."""

    account: int
    method: str
    confidence: float
    lookback: int
    observations: int
    portfolio_value: float
    var: float | None
    cvar: float | None


@dataclass(frozen=True)
class SimilarRegimes:
    """The instrument's latest regime (``current``, the API's object) and the past periods
    most like it (``similar``, nearest first, with their distance)."""

    current: dict[str, Any]
    similar: Frame


@dataclass(frozen=True)
class Recommendation:
    """Strategies ranked for an instrument's current market state, with the nearest patterns
    as evidence (``best``: None when no pattern is near)."""

    symbol: str
    as_of: datetime
    best: str | None
    ranked: Frame
    evidence: Frame


@dataclass(frozen=True)
class SignalsWritten:
    """Signals recorded by the call (``created``) and those recorded before (``unchanged``)."""

    created: int
    unchanged: int


@dataclass(frozen=True)
class BarsWritten:
    """Bars written by the call, over its batches: read, inserted, updated, unchanged, and
    the loads (Ingest records) that wrote them, one per batch."""

    rows: int
    inserted: int
    updated: int
    unchanged: int
    ingests: tuple[int, ...]


class ReadOptions(TypedDict, total=False):
    """How a bulk read is fetched and returned (each list's method takes them by keyword):
    ``output`` ("pandas", the default, "polars" or "arrow"), ``chunk`` (the longest range
    asked in one request; default the client's) and ``progress`` (a progress bar: None shows
    one for a download of several chunks when tqdm is installed)."""

    output: Output
    chunk: timedelta | None
    progress: bool | None


class Client:
    """QVP's API at ``url`` (the site, e.g. ``https://qvp.example.com``, or its
    ``/api/v1/``) with the API token ``token`` (default: the environment's
    ``QVP_API_TOKEN``), sent as ``Authorization: Token <key>``.

    ``chunk``: the longest range one bulk request asks for (the server's
    ``QVP_API_BULK_MAX_DAYS``, 366 days by default). ``retry``: how 429 and 503 are retried.
    ``page_size``: rows per page of the JSON lists (the server takes up to 5,000).
    ``progress``: the default of the reads' ``progress`` (None: a bar for downloads of more
    than one chunk, when tqdm is installed). ``session``: a ``requests.Session`` of your own
    (proxies, certificates); ``sleep``: what waits between retries.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        chunk: timedelta = DEFAULT_CHUNK,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10.0, 300.0),
        page_size: int = 1000,
        progress: bool | None = None,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if chunk <= timedelta(0):
            raise ValueError("chunk: must be positive")
        if not 1 <= page_size <= 5000:
            raise ValueError("page_size: 1 to 5000")
        self.chunk, self.page_size, self.progress = chunk, page_size, progress
        self.transport = Transport(
            url,
            token if token is not None else os.environ.get(TOKEN_VARIABLE),
            timeout=timeout,
            retry=retry,
            session=session,
            sleep=sleep,
            user_agent=f"qvp-client/{__version__}",
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- Bulk reads (Arrow stream) -----------------------------------------------------------
    def read(
        self,
        path: str,
        start: Moment,
        end: Moment,
        params: Mapping[str, Any] | None = None,
        *,
        output: Output = "pandas",
        chunk: timedelta | None = None,
        progress: bool | None = None,
    ) -> Frame:
        """Any bulk list of the API (``path`` under /api/v1/, e.g. ``"bars/"``) over
        [start, end) with its query ``params``, read as Arrow in chunks of at most ``chunk``
        and concatenated in time order."""
        kind = checked_output(output)  # before the download, not after
        return convert(self._read_table(path, start, end, params, chunk, progress), kind)

    def _read_table(
        self,
        path: str,
        start: Moment,
        end: Moment,
        params: Mapping[str, Any] | None,
        chunk: timedelta | None,
        progress: bool | None,
    ) -> pa.Table:
        ranges = chunks(as_utc(start, "start"), as_utc(end, "end"), chunk or self.chunk)
        query = query_params(params or {})
        shown, delay = wanted(self.progress if progress is None else progress, len(ranges))
        tables: list[pa.Table] = []
        with Progress(path.strip("/"), len(ranges), shown, delay) as bar:
            for low, high in ranges:
                asked = {**query, "start": iso(low), "end": iso(high), "format": "arrow"}
                response = self.transport.request(
                    "GET",
                    path,
                    params=asked,
                    accept=f"{ARROW_STREAM}, application/json;q=0.5",
                    stream=True,
                )
                tables.append(arrow_table(response, bar.bytes))
                bar.chunk_done(tables[-1].num_rows)
        return concatenated(tables)

    def bars(
        self,
        symbol: str,
        start: Moment,
        end: Moment,
        timeframe: str = "1m",
        known_at: Moment | None = None,
        adjustment: str = "raw",
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Bars of ``symbol`` in [start, end), oldest first: ``timeframe`` "1m" (minute) or
        "1d" (daily), as the system knew them at ``known_at`` (default: now), ``adjustment``
        "raw" (as traded), "split" or "total_return". Columns: ts, open, high, low, close,
        volume, vwap, trade_count."""
        params = {
            "symbol": symbol,
            "timeframe": timeframe,
            "known_at": known_at,
            "adjustment": adjustment,
        }
        return self.read("bars/", start, end, params, **options)

    def buckets(
        self,
        symbol: str,
        start: Moment,
        end: Moment,
        width: str,
        timeframe: str = "1m",
        known_at: Moment | None = None,
        adjustment: str = "raw",
        gapfill: bool = False,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """OHLCV of ``symbol`` in buckets of ``width`` ("1h", "1d", "1w", "1mo", "15
        minutes") over [start, end). A bucket cut by a chunk's edge comes back from both
        chunks and is put together again (first open, highest high, lowest low, last close,
        summed volume and bar count), so chunking never changes the answer."""
        params = {
            "symbol": symbol,
            "width": width,
            "timeframe": timeframe,
            "known_at": known_at,
            "adjustment": adjustment,
            "gapfill": gapfill,
        }
        kind = checked_output(options.get("output", "pandas"))
        chunk, progress = options.get("chunk"), options.get("progress")
        table = self._read_table("bars/buckets/", start, end, params, chunk, progress)
        return convert(merged_buckets(table), kind)

    def ticks(
        self,
        symbol: str,
        start: Moment,
        end: Moment,
        known_at: Moment | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Trade and quote ticks of ``symbol`` in [start, end), oldest first, a month at a
        time at most (the server's limit for ticks) unless ``chunk`` says otherwise."""
        params = {"symbol": symbol, "known_at": known_at}
        options.setdefault("chunk", min(self.chunk, TICK_CHUNK))
        return self.read("ticks/", start, end, params, **options)

    def option_quotes(
        self,
        start: Moment,
        end: Moment,
        *,
        output: Output = "pandas",
        chunk: timedelta | None = None,
        progress: bool | None = None,
        **filters: Any,
    ) -> Frame:
        """Option quotes in [start, end), filtered by the list's parameters (``filters``), a
        month at a time at most (the server's limit for quotes) unless ``chunk`` says
        otherwise."""
        chunk = chunk or min(self.chunk, TICK_CHUNK)
        return self.read(
            "options/quotes/", start, end, filters, output=output, chunk=chunk, progress=progress
        )

    def orders(
        self,
        start: Moment,
        end: Moment,
        account: int | None = None,
        symbol: str | None = None,
        status: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Orders of your accounts created in [start, end), oldest first."""
        params = {"account": account, "symbol": symbol, "status": status}
        return self.read("orders/", start, end, params, **options)

    def executions(
        self,
        start: Moment,
        end: Moment,
        account: int | None = None,
        symbol: str | None = None,
        order: int | None = None,
        kind: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Executions of your accounts in [start, end) (by executed_at), oldest first."""
        params = {"account": account, "symbol": symbol, "order": order, "kind": kind}
        return self.read("executions/", start, end, params, **options)

    def cash(
        self,
        start: Moment,
        end: Moment,
        account: int | None = None,
        kind: str | None = None,
        currency: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """The cash ledger of your accounts in [start, end) (by entry_at), oldest first."""
        params = {"account": account, "kind": kind, "currency": currency}
        return self.read("cash/", start, end, params, **options)

    def snapshots(
        self,
        start: Moment,
        end: Moment,
        account: int | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Portfolio snapshots of your accounts in [start, end), oldest first."""
        return self.read(
            "portfolio/snapshots/",
            start,
            end,
            {"account": account},
            **options,
        )

    def risk_metrics(
        self,
        start: Moment,
        end: Moment,
        account: int | None = None,
        metric: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Risk metrics of your accounts in [start, end), oldest first."""
        params = {"account": account, "metric": metric}
        return self.read("risk/metrics/", start, end, params, **options)

    def signals(
        self,
        start: Moment,
        end: Moment,
        agent: str | None = None,
        symbols: Symbols | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Signals in [start, end), by agent (its name) and symbols, oldest first."""
        params = {"agent": agent, "symbols": symbols}
        return self.read("signals/", start, end, params, **options)

    def fused_signals(
        self,
        start: Moment,
        end: Moment,
        symbols: Symbols | None = None,
        method: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Fused signals in [start, end), oldest first."""
        params = {"symbols": symbols, "method": method}
        return self.read("signals/fused/", start, end, params, **options)

    def news(
        self,
        start: Moment,
        end: Moment,
        symbol: str | None = None,
        source: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """News articles in [start, end), about ``symbol``, from ``source``, oldest first."""
        params = {"symbol": symbol, "source": source}
        return self.read("news/", start, end, params, **options)

    def sentiment(
        self,
        start: Moment,
        end: Moment,
        symbols: Symbols | None = None,
        platform: str | None = None,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Social sentiment in [start, end), oldest first."""
        params = {"symbols": symbols, "platform": platform}
        return self.read("sentiment/", start, end, params, **options)

    def features(
        self,
        start: Moment,
        end: Moment,
        symbols: Symbols | None = None,
        feature_set: str | None = None,
        vectors: bool = True,
        **options: Unpack[ReadOptions],
    ) -> Frame:
        """Feature embeddings of windows closing in [start, end), oldest first: id, symbol,
        feature_set ("name:version"), ts, and embedding (a fixed-size list of 4-byte floats;
        ``vectors=False`` leaves it out, a fraction of the bytes). ``feature_set``: "name" or
        "name:version" (default: the server's current one)."""
        params = {"symbols": symbols, "feature_set": feature_set, "vectors": vectors}
        return self.read("vectors/features/", start, end, params, **options)

    def audit(
        self,
        start: Moment,
        end: Moment,
        *,
        output: Output = "pandas",
        chunk: timedelta | None = None,
        progress: bool | None = None,
        **filters: Any,
    ) -> Frame:
        """The audit log in [start, end), oldest first (auditors and superusers only)."""
        return self.read(
            "audit/",
            start,
            end,
            filters,
            output=output,
            chunk=chunk,
            progress=progress,
        )

    # --- JSON reads --------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of a GET on ``path`` (under /api/v1/)."""
        return self.transport.request("GET", path, params=query_params(params or {})).json()

    def post(self, path: str, body: Any) -> Any:
        """The JSON answer of a POST of ``body`` (made plain: decimals, times...) to
        ``path``; a refusal raises ``Refused`` naming each item and field."""
        return self.transport.request("POST", path, body=plain(body)).json()

    def rows(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """The rows of a paginated JSON list, page after page (following each page's
        ``next``, numbered or cursor)."""
        query = {"page_size": str(self.page_size), **query_params(params or {})}
        page: Any = self.transport.request("GET", path, params=query).json()
        while True:
            if not isinstance(page, dict) or "results" not in page:
                raise errors.QvpError(f"GET {path}: not a page of a list: {str(page)[:200]}")
            yield from page["results"]
            link = page.get("next")
            if not link:
                return
            page = self.transport.request("GET", link).json()

    def positions(
        self,
        account: int | None = None,
        symbol: str | None = None,
        *,
        output: Output = "pandas",
    ) -> Frame:
        """Positions of your accounts (``instrument`` is the symbol; quantities and costs
        exact decimals)."""
        found = list(self.rows("positions/", {"account": account, "symbol": symbol}))
        return frame_of(found, POSITION_COLUMNS, checked_output(output))

    def var(
        self,
        account: int,
        method: str = "historical",
        confidence: float = 0.95,
        lookback: int = 252,
        as_of: Moment | None = None,
        known_at: Moment | None = None,
    ) -> VaR:
        """Value at risk and CVaR of ``account``, computed now by the server (``method``
        historical, parametric or monte_carlo, as the server offers), as of ``as_of``, from
        the data as known at ``known_at``."""
        params = {
            "account": account,
            "method": method,
            "confidence": confidence,
            "lookback": lookback,
            "as_of": as_of,
            "known_at": known_at,
        }
        answer = self.get("risk/var/", params)
        return VaR(
            account=int(answer["account"]),
            method=str(answer["method"]),
            confidence=float(answer["confidence"]),
            lookback=int(answer["lookback"]),
            observations=int(answer["observations"]),
            portfolio_value=float(answer["portfolio_value"]),
            var=None if answer["var"] is None else float(answer["var"]),
            cvar=None if answer["cvar"] is None else float(answer["cvar"]),
        )

    def similar_features(
        self,
        vector: Sequence[float] | None = None,
        *,
        id: int | None = None,
        k: int = 10,
        metric: str = "cosine",
        symbols: Symbols | None = None,
        start: Moment | None = None,
        end: Moment | None = None,
        feature_set: str | None = None,
        output: Output = "pandas",
    ) -> Frame:
        """The ``k`` feature embeddings nearest ``vector`` (or the stored embedding ``id``),
        nearest first: id, symbol, ts, distance (by ``metric``: cosine, l2, inner_product)."""
        body: dict[str, Any] = {"k": k, "metric": metric}
        given = {
            "vector": None if vector is None else [float(x) for x in vector],
            "id": id,
            "symbols": joined(symbols),
            "start": None if start is None else iso(as_utc(start, "start")),
            "end": None if end is None else iso(as_utc(end, "end")),
            "feature_set": feature_set,
        }
        body.update({name: value for name, value in given.items() if value is not None})
        answer = self.post("vectors/features/search/", body)
        return frame_of(answer["neighbours"], NEIGHBOUR_COLUMNS, checked_output(output))

    def similar_regimes(
        self, symbol: str, k: int = 10, *, output: Output = "pandas"
    ) -> SimilarRegimes:
        """``symbol``'s latest volatility regime and the ``k`` past periods most like it."""
        answer = self.get("vectors/regimes/similar/", {"symbol": symbol, "k": k})
        similar = frame_of(answer["similar"], REGIME_COLUMNS, checked_output(output))
        return SimilarRegimes(current=answer["current"], similar=similar)

    def recommend_strategies(
        self, symbol: str, k: int = 100, *, output: Output = "pandas"
    ) -> Recommendation:
        """Strategies ranked for ``symbol``'s current market state, weighing the ``k``
        nearest patterns (the evidence)."""
        answer = self.get("vectors/strategies/recommend/", {"symbol": symbol, "k": k})
        kind = checked_output(output)
        return Recommendation(
            symbol=str(answer["symbol"]),
            as_of=as_utc(answer["as_of"], "as_of"),
            best=answer["best"],
            ranked=frame_of(answer["ranked"], STRATEGY_COLUMNS, kind),
            evidence=frame_of(answer["evidence"], PATTERN_COLUMNS, kind),
        )

    # --- Writes ------------------------------------------------------------------------------
    def place_order(
        self,
        account: int,
        symbol: str,
        side: str,
        quantity: Decimal | int | str,
        *,
        order_type: str = "market",
        limit_price: Decimal | float | str | None = None,
        stop_price: Decimal | float | str | None = None,
        time_in_force: str | None = None,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        """Place an order (``side`` buy or sell, a positive ``quantity``); the order as the
        server recorded it. ``client_order_id`` (default: a new UUID) names it in its
        account: the server takes it once, so no retry can place it twice."""
        body = {
            "account": account,
            "instrument": symbol,
            "side": side,
            "quantity": quantity,
            "order_type": order_type,
            "limit_price": limit_price,
            "stop_price": stop_price,
            "time_in_force": time_in_force,
            "client_order_id": client_order_id or uuid.uuid4().hex,
        }
        answer: dict[str, Any] = self.post(
            "orders/", {name: value for name, value in body.items() if value is not None}
        )
        return answer

    def cancel_order(self, order: int, reason: str = "") -> dict[str, Any]:
        """Cancel order ``order``; the order as it stands after."""
        answer: dict[str, Any] = self.post(f"orders/{int(order)}/cancel/", {"reason": reason})
        return answer

    def post_executions(
        self, executions: Any, *, batch_size: int = DEFAULT_BATCH
    ) -> list[dict[str, Any]]:
        """Book executions (mappings or a DataFrame with exec_id, order, side, quantity,
        signed, price, executed_at, and fee, liquidity...), in batches of ``batch_size``,
        each booked whole or not at all; the executions as booked. An exec id booked already
        with the same terms is a replay (the booked one comes back), so posting again after
        a failure books nothing twice."""
        booked: list[dict[str, Any]] = []
        for answer in self._batches("executions/", records(executions), batch_size):
            booked.extend(answer)
        return booked

    def post_signals(self, signals: Any, *, batch_size: int = DEFAULT_BATCH) -> SignalsWritten:
        """Record signals (mappings or a DataFrame with agent, symbol, ts, strength,
        confidence, horizon, and direction, explanation) in batches of ``batch_size``. A
        signal recorded before (same agent, symbol and time) is left as it was and counted
        ``unchanged``, so posting again after a refusal writes each signal once."""
        created = unchanged = 0
        for answer in self._batches("signals/", records(signals), batch_size):
            created += int(answer["created"])
            unchanged += int(answer["unchanged"])
        return SignalsWritten(created, unchanged)

    def post_bars(
        self,
        symbol: str,
        bars: Any,
        timeframe: str = "1m",
        *,
        batch_size: int = DEFAULT_BATCH,
    ) -> BarsWritten:
        """Write bars of ``symbol`` (mappings or a DataFrame with ts, open, high, low, close,
        and volume), upserted on their time, in batches of ``batch_size`` (each a load of its
        own). Posting the same bars again changes nothing."""
        items = records(bars)
        totals = {"rows": 0, "inserted": 0, "updated": 0, "unchanged": 0}
        ingests: list[int] = []
        for offset, batch in batched(items, batch_size):
            body = {"symbol": symbol, "timeframe": timeframe, "bars": batch}
            try:
                answer = self.post("bars/", body)
            except errors.Refused as refusal:
                raise _offset(refusal, offset, "bars") from None
            for name in totals:
                totals[name] += int(answer[name])
            ingests.append(int(answer["ingest"]))
        return BarsWritten(ingests=tuple(ingests), **totals)

    def _batches(self, path: str, items: list[dict[str, Any]], size: int) -> Iterator[Any]:
        """The answers to ``items`` posted as lists of ``size``; a refusal raised with the
        indices of ``items``."""
        for offset, batch in batched(items, size):
            try:
                yield self.post(path, batch)
            except errors.Refused as refusal:
                raise _offset(refusal, offset) from None


def batched(items: list[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    """``items`` in lists of ``size``, each with the index of its first item."""
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch_size: 1 to {MAX_BATCH:,}")
    if not items:
        raise ValueError("nothing to write: the list is empty")
    for offset in range(0, len(items), size):
        yield offset, items[offset : offset + size]


def _offset(refusal: errors.Refused, offset: int, container: str = "") -> errors.Refused:
    """A batch's refusal with its items' indices in the whole list, and the items written
    before it (the batches that went before)."""
    body = refusal.body
    if container and isinstance(body, dict) and isinstance(body.get(container), dict):
        body = body[container]  # {"bars": {"3": ...}}: the items are the bars
    problems = [
        errors.Problem(None if p.index is None else p.index + offset, p.field, p.messages, p.rule)
        for p in errors.problems_of(body)
    ]
    first = refusal.args[0].split(":", 1)[0] if refusal.args else "refused"
    written = f"; the {offset:,} items before were written" if offset else ""
    message = f"{first}: {refusal.status} refused{written}:{errors.describe(problems)}"
    found = errors.BatchRefused(
        message, written=offset, status=refusal.status, url=refusal.url, body=refusal.body
    )
    found.problems = problems
    return found


def joined(symbols: Symbols | None) -> str | None:
    if symbols is None or isinstance(symbols, str):
        return symbols
    return ",".join(symbols)


def query_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters as text: times ISO 8601 UTC, booleans true/false, symbol lists
    comma-separated; None left out."""
    found: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            found[name] = "true" if value else "false"
        elif isinstance(value, datetime | date):  # a date: its midnight UTC
            found[name] = iso(as_utc(value, name))
        elif isinstance(value, list | tuple):
            found[name] = ",".join(str(item) for item in value)
        else:
            found[name] = str(value)
    return found


def merged_buckets(table: pa.Table) -> pa.Table:
    """Buckets with one row per bucket: those two chunks both hold (cut by the edge between
    them) combined."""
    if table.num_rows == 0 or "bucket" not in table.column_names:
        return table
    if pc.count_distinct(table["bucket"]).as_py() == table.num_rows:
        return table
    names = [name for name in table.column_names if name != "bucket"]
    how = [(name, BUCKET_MERGE.get(name, "first")) for name in names]
    grouped = table.group_by("bucket", use_threads=False).aggregate(how)
    renamed = grouped.rename_columns(
        [name if name == "bucket" else name.rsplit("_", 1)[0] for name in grouped.column_names]
    )
    ordered = renamed.select(table.column_names).sort_by("bucket")
    return ordered.cast(table.schema)
