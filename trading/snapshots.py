"""Portfolio snapshots: each account's value at a time, in its base currency, in one statement.

Everything is derived from the books as they stood at the snapshot's time, never from the
current positions table, so a snapshot of the past is right and taking it again restates it
(the numbers it replaces are kept, trading/sql/snapshots/0012.sql; the same numbers again change
nothing, and count as no row written):

- cash: the cash entries up to the time, per currency (an execution's cash is in its
  instrument's currency), and the cash dividends receivable: a dividend counts from its ex
  moment (its corporate-action entry's ``ex_at``), when the share price drops by it, not from
  its pay date (its cash entry's ``entry_at``), so neither day shows a gain or loss that is
  none; the payment turns the receivable into cash at no change of NAV. The snapshot names no
  receivable apart: its one detail, ``unpriced``, lists what was left out of the value;
- holdings: the executions in force at the time: fills and corrections, less those that a bust
  or a correction had replaced by then (a bust only mirrors what it cancels; the cash side
  follows the same dates, since the ledger reverses an execution's cash at the bust's time),
  and the quantity the corporate-action entries moved from their ex moments (a split's new
  shares; their cash is the ledger's, dated as booked, a dividend's from its ex moment);
- market value: quantity * the latest close at or before the time (``marketdata.prices``'
  lookup, taken per (instrument, time)) * the instrument's multiplier, converted to the base
  currency through the latest FX rate: the direct pair (EURUSD for EUR -> USD) or its inverse;
  a close from before an ex moment prices the shares held after it by the total-return factors
  of the actions between the two: in a split's shares, less a dividend gone ex since
  (receivable by then, it is no longer in the share), less the part a spin-off moved;
- what has no price or rate is left out of the value and named in ``unpriced``;
- gross exposure = sum |value|, net exposure = sum value (cash is not exposure);
- daily P&L = NAV change since the account's previous snapshot less the deposits and
  withdrawals in between (converted at the snapshot's rates); NULL for an account's first.

Everything is read as the system knew it at one moment, ``known_at`` (by default the settled
moment, ``marketdata.knowledge``), recorded on each snapshot with the code's version: the
executions, corporate-action entries and cash entries booked by then (a bust booked later is
left out), the bars as known then (marketdata's revisions). Taking a snapshot again with its
``known_at`` gives the same cash, market value, NAV and exposures to the last digit, whatever
was corrected since.

Any number of accounts and times go into one INSERT ... SELECT ... ON CONFLICT DO UPDATE: a
daily history of a year is one statement, and the previous NAV of each time is the one just
computed before it. Taking a snapshot before existing ones leaves the next one's daily P&L
measured from its old predecessor: re-take the series through the end to chain them again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from marketdata.knowledge import knowledge_time
from marketdata.prices import LATEST_PRICES_KNOWN_AT_SQL, latest_prices_at
from qvp_site.acting import acting_as
from qvp_site.code_version import code_version
from qvp_site.db import engine, partitions

TABLE = "trading_portfoliosnapshot"
ACTOR = "snapshot_portfolios"
# Times per statement in a series: a year of daily snapshots is one statement, and a longer
# or finer series is chained across statements through the rows already written.
TIMES_PER_STATEMENT = 400


def _prices_per_time(sql: str) -> str:
    """``marketdata.prices``' lookup, taken per (instrument, time) pair of the CTE
    ``price_wanted`` rather than for a list of instruments at one time."""
    swaps = [
        ("SELECT i.id,", "SELECT i.id, i.as_of,"),
        ("unnest(%(ids)s::bigint[]) AS i(id)", "price_wanted AS i(id, as_of)"),
        ("%(as_of)s", "i.as_of"),
    ]
    for old, new in swaps:
        if old not in sql:
            raise RuntimeError(f"marketdata.prices.LATEST_PRICES_SQL no longer has {old!r}")
        sql = sql.replace(old, new)
    return sql


_SNAPSHOT = """
WITH times AS (
    SELECT DISTINCT as_of FROM unnest(%(times)s::timestamptz[]) AS t(as_of)
),
accounts AS (
    SELECT id, base_currency AS base FROM trading_account
    WHERE %(accounts)s::bigint[] IS NULL OR id = ANY(%(accounts)s::bigint[])
),
holdings AS (
    SELECT m.as_of, m.account_id, m.instrument_id, sum(m.quantity) AS quantity FROM (
        SELECT t.as_of, x.account_id, x.instrument_id, x.quantity
        FROM times t JOIN trading_execution x ON x.executed_at <= t.as_of
        WHERE x.account_id IN (SELECT id FROM accounts) AND x.kind <> 'bust'
          AND x.created_at <= %(known_at)s
          AND NOT EXISTS (SELECT 1 FROM trading_execution s
                          WHERE s.supersedes_id = x.id AND s.executed_at <= t.as_of
                            AND s.created_at <= %(known_at)s)
        UNION ALL
        SELECT t.as_of, e.account_id, e.instrument_id, e.quantity_after - e.quantity_before
        FROM times t JOIN trading_actionentry e ON e.ex_at <= t.as_of
        WHERE e.account_id IN (SELECT id FROM accounts) AND e.applied_at <= %(known_at)s
    ) AS m
    GROUP BY m.as_of, m.account_id, m.instrument_id
    HAVING sum(m.quantity) <> 0
),
balances AS (
    SELECT m.as_of, m.account_id, m.currency, sum(m.amount) AS amount FROM (
        SELECT t.as_of, c.account_id, c.currency, c.amount
        FROM times t JOIN trading_cashentry c ON c.entry_at <= t.as_of
        WHERE c.account_id IN (SELECT id FROM accounts) AND c.created_at <= %(known_at)s
        UNION ALL
        -- A dividend between its ex moment and its pay date: receivable, counted as cash so
        -- that it offsets the price's drop on the ex-date (and the payment moves nothing).
        SELECT t.as_of, c.account_id, c.currency, c.amount
        FROM times t JOIN trading_actionentry e ON e.ex_at <= t.as_of
        JOIN trading_cashentry c ON c.id = e.cash_entry_id AND c.entry_at > t.as_of
        WHERE e.account_id IN (SELECT id FROM accounts) AND c.kind = 'dividend'
          AND e.applied_at <= %(known_at)s AND c.created_at <= %(known_at)s
    ) AS m
    GROUP BY m.as_of, m.account_id, m.currency
),
rates_wanted AS (
    SELECT b.as_of, b.currency, a.base
    FROM balances b JOIN accounts a ON a.id = b.account_id WHERE b.currency <> a.base
    UNION
    SELECT h.as_of, i.currency, a.base
    FROM holdings h JOIN accounts a ON a.id = h.account_id
    JOIN marketdata_instrument i ON i.id = h.instrument_id WHERE i.currency <> a.base
),
fx AS (
    SELECT w.as_of, w.currency, w.base, i.id, i.symbol = w.currency || w.base AS direct
    FROM rates_wanted w JOIN marketdata_instrument i
      ON i.asset_class = 'fx' AND i.symbol IN (w.currency || w.base, w.base || w.currency)
),
price_wanted AS (
    SELECT instrument_id, as_of FROM holdings
    UNION
    SELECT id, as_of FROM fx
),
prices AS ({prices}),
-- The direct pair where both are quoted: its rate needs no division.
rates AS (
    SELECT DISTINCT ON (f.as_of, f.currency, f.base) f.as_of, f.currency, f.base,
           CASE WHEN f.direct THEN p.close::numeric ELSE 1 / p.close::numeric END AS rate
    FROM fx f JOIN prices p ON p.id = f.id AND p.as_of = f.as_of
    ORDER BY f.as_of, f.currency, f.base, f.direct DESC
),
-- A close from before an action gone ex since (the morning of its ex-date, before the day's
-- first bar) prices a share of after it: in a split's shares, less a dividend (receivable by
-- then, it is no longer in the share), less the part a spin-off moved (its shares are held
-- and priced apart): the total-return factors of the actions between the close and the time,
-- as known then, whoever holds the share. Computed once for the statement's instruments.
factors AS MATERIALIZED (
    SELECT f.instrument_id, f.bounds, f.price_factors
    FROM marketdata_action_factors('total_return', %(known_at)s) AS f
    WHERE f.instrument_id IN (SELECT instrument_id FROM holdings)
),
valued AS (
    SELECT h.as_of, h.account_id, i.symbol, h.quantity, i.currency, a.base,
           p.close IS NULL AS no_price,
           h.quantity * p.close::numeric * i.multiplier
               * coalesce((marketdata_factor_at(p.ts, f.bounds, f.price_factors)
                           / marketdata_factor_at(h.as_of, f.bounds, f.price_factors))::numeric, 1)
               * CASE WHEN i.currency = a.base THEN 1 ELSE r.rate END AS value
    FROM holdings h JOIN accounts a ON a.id = h.account_id
    JOIN marketdata_instrument i ON i.id = h.instrument_id
    LEFT JOIN prices p ON p.id = h.instrument_id AND p.as_of = h.as_of
    LEFT JOIN rates r ON r.as_of = h.as_of AND r.currency = i.currency AND r.base = a.base
    LEFT JOIN factors f ON f.instrument_id = h.instrument_id
),
cash AS (
    SELECT b.as_of, b.account_id, b.currency, a.base, b.amount,
           b.amount * CASE WHEN b.currency = a.base THEN 1 ELSE r.rate END AS value
    FROM balances b JOIN accounts a ON a.id = b.account_id
    LEFT JOIN rates r ON r.as_of = b.as_of AND r.currency = b.currency AND r.base = a.base
),
unpriced AS (
    SELECT as_of, account_id, jsonb_agg(item ORDER BY item::text) AS items FROM (
        SELECT as_of, account_id, jsonb_build_object(
                   'symbol', symbol, 'quantity', trim_scale(quantity),
                   'missing', CASE WHEN no_price THEN 'price'
                                   ELSE format('rate %%s->%%s', currency, base) END) AS item
        FROM valued WHERE value IS NULL
        UNION ALL
        SELECT as_of, account_id, jsonb_build_object(
                   'cash', currency, 'amount', trim_scale(amount),
                   'missing', format('rate %%s->%%s', currency, base))
        FROM cash WHERE value IS NULL AND amount <> 0
    ) AS items
    GROUP BY as_of, account_id
),
-- An account is valued from its first cash entry or execution on: before, it had no books.
totals AS (
    SELECT a.id AS account_id, t.as_of AS ts, a.base AS currency,
           round(coalesce(c.value, 0), 8) AS cash,
           round(coalesce(v.value, 0), 8) AS market_value,
           round(coalesce(v.gross, 0), 8) AS gross_exposure,
           coalesce(u.items, '[]') AS unpriced
    FROM accounts a CROSS JOIN times t
    LEFT JOIN (SELECT as_of, account_id, sum(value) AS value FROM cash
               GROUP BY as_of, account_id) c ON c.account_id = a.id AND c.as_of = t.as_of
    LEFT JOIN (SELECT as_of, account_id, sum(value) AS value, sum(abs(value)) AS gross
               FROM valued GROUP BY as_of, account_id) v
           ON v.account_id = a.id AND v.as_of = t.as_of
    LEFT JOIN unpriced u ON u.account_id = a.id AND u.as_of = t.as_of
    WHERE c.account_id IS NOT NULL OR v.account_id IS NOT NULL
),
-- Existing snapshots a computed one may follow: from the last before the first time on.
earlier AS (
    SELECT s.account_id, s.ts, s.nav FROM trading_portfoliosnapshot s
    WHERE s.account_id IN (SELECT account_id FROM totals)
      AND s.ts < (SELECT max(as_of) FROM times) AND s.ts NOT IN (SELECT as_of FROM times)
      AND s.ts >= (SELECT coalesce(max(p.ts), '-infinity') FROM trading_portfoliosnapshot p
                   WHERE p.account_id = s.account_id AND p.ts < (SELECT min(as_of) FROM times))
),
chained AS (
    SELECT account_id, ts, computed, lag(ts) OVER w AS previous_ts,
           nav - lag(nav) OVER w AS nav_change
    FROM (SELECT account_id, ts, cash + market_value AS nav, true AS computed FROM totals
          UNION ALL
          SELECT account_id, ts, nav, false FROM earlier) AS history
    WINDOW w AS (PARTITION BY account_id ORDER BY ts)
),
-- Deposits and withdrawals first, then matched to the snapshots: each CTE computed once,
-- whatever the planner guesses of tables it has no statistics for yet (a fresh demo).
external AS MATERIALIZED (
    SELECT f.account_id, f.currency, f.amount, f.entry_at FROM trading_cashentry f
    WHERE f.kind IN ('deposit', 'withdrawal') AND f.account_id IN (SELECT id FROM accounts)
      AND f.entry_at <= (SELECT max(as_of) FROM times) AND f.created_at <= %(known_at)s
),
flows AS MATERIALIZED (
    SELECT k.account_id, k.ts,
           sum(f.amount * CASE WHEN f.currency = a.base THEN 1 ELSE r.rate END) AS amount
    FROM chained k JOIN accounts a ON a.id = k.account_id
    JOIN external f ON f.account_id = k.account_id
     AND f.entry_at > k.previous_ts AND f.entry_at <= k.ts
    LEFT JOIN rates r ON r.as_of = k.ts AND r.currency = f.currency AND r.base = a.base
    WHERE k.computed
    GROUP BY k.account_id, k.ts
)
INSERT INTO trading_portfoliosnapshot (account_id, ts, currency, cash, market_value, nav,
                                       gross_exposure, net_exposure, daily_pnl, unpriced,
                                       known_at, code_version)
SELECT t.account_id, t.ts, t.currency, t.cash, t.market_value, t.cash + t.market_value,
       t.gross_exposure, t.market_value, round(k.nav_change - coalesce(f.amount, 0), 8),
       t.unpriced, %(known_at)s, %(code_version)s
FROM totals t
JOIN chained k ON k.account_id = t.account_id AND k.ts = t.ts AND k.computed
LEFT JOIN flows f ON f.account_id = t.account_id AND f.ts = t.ts
ON CONFLICT (account_id, ts) DO UPDATE SET
    currency = EXCLUDED.currency, cash = EXCLUDED.cash, market_value = EXCLUDED.market_value,
    nav = EXCLUDED.nav, gross_exposure = EXCLUDED.gross_exposure,
    net_exposure = EXCLUDED.net_exposure, daily_pnl = EXCLUDED.daily_pnl,
    unpriced = EXCLUDED.unpriced, known_at = EXCLUDED.known_at,
    code_version = EXCLUDED.code_version
-- Taken again with the same numbers, a snapshot stays as stored: its first knowledge time and
-- code still give those numbers, and no revision records a change that is none.
WHERE (trading_portfoliosnapshot.currency, trading_portfoliosnapshot.cash,
       trading_portfoliosnapshot.market_value, trading_portfoliosnapshot.gross_exposure,
       trading_portfoliosnapshot.net_exposure, trading_portfoliosnapshot.daily_pnl,
       trading_portfoliosnapshot.unpriced)
      IS DISTINCT FROM
      (EXCLUDED.currency, EXCLUDED.cash, EXCLUDED.market_value, EXCLUDED.gross_exposure,
       EXCLUDED.net_exposure, EXCLUDED.daily_pnl, EXCLUDED.unpriced)
"""
_PRICES = "prices AS ({prices}),"
SNAPSHOT_SQL = _SNAPSHOT.replace("{prices}", _prices_per_time(LATEST_PRICES_KNOWN_AT_SQL))

# Where the market data is distributed (Citus), which plans no lookup from the statement's own
# pairs into the bars: the pairs first (the statement's CTEs up to them, the coordinator's
# tables only), their prices looked up apart (marketdata.prices.latest_prices_at), then the
# statement with those prices given, reading the coordinator's tables alone.
PAIRS_SQL = (
    _SNAPSHOT[: _SNAPSHOT.index(_PRICES)].rstrip().removesuffix(",")
    + "\nSELECT instrument_id, as_of FROM price_wanted"
)
GIVEN_PRICES_SQL = _SNAPSHOT.replace(
    "{prices}",
    "SELECT * FROM unnest(%(price_ids)s::bigint[], %(price_times)s::timestamptz[],"
    " %(price_ts)s::timestamptz[], %(price_closes)s::double precision[],"
    " %(price_sources)s::text[]) AS given(id, as_of, ts, close, source)",
)


def take_snapshots(
    as_of: datetime, accounts: Iterable[int] | None = None, known_at: datetime | None = None
) -> int:
    """Snapshot ``accounts`` (ids; default all) as of ``as_of``, as known at ``known_at``;
    returns the rows written."""
    return take_snapshots_at([as_of], accounts, known_at)


def take_snapshot_series(
    start: datetime,
    end: datetime,
    every: timedelta = timedelta(days=1),
    accounts: Iterable[int] | None = None,
    known_at: datetime | None = None,
) -> int:
    """Snapshots at ``start``, ``start + every``, ... up to ``end`` (a history)."""
    if every <= timedelta(0):
        raise ValueError("every must be a positive interval")
    times = []
    while start <= end:
        times.append(start)
        start += every
    return take_snapshots_at(times, accounts, known_at)


def take_snapshots_at(
    times: Sequence[datetime],
    accounts: Iterable[int] | None = None,
    known_at: datetime | None = None,
) -> int:
    """Snapshot ``accounts`` (ids; default all that have books by then) at each of ``times``,
    the books and bars as known at ``known_at`` (default: the settled moment), recorded.

    Outside a transaction the partitions come first, in their own short transaction, and the
    writes follow in one acting as this module's system actor; inside one, the caller has
    declared who acts (see ``qvp_site.acting``) and holds the transaction.
    """
    times = sorted(set(times))
    if not times:
        return 0
    ids = None if accounts is None else sorted({int(a) for a in accounts})
    partitions.prepare_load(TABLE, times[0], times[-1])
    written = 0
    with _acting(), connection.cursor() as cursor:
        known, version = knowledge_time(known_at), code_version()
        for chunk in _chunks(times, TIMES_PER_STATEMENT):
            params = {"times": chunk, "accounts": ids, "known_at": known, "code_version": version}
            cursor.execute(*_statement(cursor, params))
            written += cursor.rowcount
    return written


def _prices_apart(connection: Any) -> bool:
    return engine.distributes_market_data(connection)


def _statement(cursor, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The snapshot statement and its parameters for this engine (see ``PAIRS_SQL``)."""
    if not _prices_apart(cursor.db):
        return SNAPSHOT_SQL, params
    cursor.execute(PAIRS_SQL, params)
    found = latest_prices_at(cursor.fetchall(), params["known_at"])
    columns = ("price_ids", "price_times", "price_ts", "price_closes", "price_sources")
    given = {column: [row[i] for row in found] for i, column in enumerate(columns)}
    return GIVEN_PRICES_SQL, params | given


def _acting() -> contextlib.AbstractContextManager:
    if connection.in_atomic_block:
        return contextlib.nullcontext()
    return acting_as(ACTOR)


def _chunks(items: list, size: int) -> Iterator[list]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]
