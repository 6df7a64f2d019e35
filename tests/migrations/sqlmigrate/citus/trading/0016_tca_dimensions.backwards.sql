BEGIN;
--
-- Raw SQL operation
--

DROP TRIGGER IF EXISTS trading_tca_action_closed ON marketdata_corporateaction;
DROP TRIGGER IF EXISTS trading_tca_action_stated ON marketdata_corporateaction;
DROP TRIGGER IF EXISTS trading_tca_minutebar_added ON marketdata_minutebar;
DROP TRIGGER IF EXISTS trading_tca_tick_added ON marketdata_tick;
DROP TRIGGER IF EXISTS trading_tca_minutebar_revised ON marketdata_minutebarrevision;
DROP TRIGGER IF EXISTS trading_tca_tick_revised ON marketdata_tickrevision;
DROP TRIGGER IF EXISTS trading_tca_superseded ON trading_execution;
DROP FUNCTION IF EXISTS trading_tca_summary_of(text, timestamptz, timestamptz, bigint[]);
DROP FUNCTION IF EXISTS trading_tca_action_changed();
DROP FUNCTION IF EXISTS trading_tca_market_revised();
DROP FUNCTION IF EXISTS trading_tca_market_added();
DROP FUNCTION IF EXISTS trading_tca_queue_days(bigint[], timestamptz[], timestamptz[], text);
DROP FUNCTION IF EXISTS trading_tca_superseded();
DROP FUNCTION IF EXISTS trading_tca_refresh_pending(timestamptz);
DROP FUNCTION IF EXISTS trading_tca_restate(timestamptz[], timestamptz[], bigint[], bigint[],
    timestamptz);
DROP FUNCTION IF EXISTS trading_tca_dividends(timestamptz, timestamptz, timestamptz,
    timestamptz[], double precision[], timestamptz[], double precision[]);
DROP FUNCTION IF EXISTS trading_tca_scoped_executions(timestamptz[], timestamptz[], bigint[],
    bigint[]);
DROP FUNCTION IF EXISTS trading_tca_shortfall(timestamptz, timestamptz, bigint, timestamptz);
DROP TABLE IF EXISTS trading_tcapending;
-- Version 0015 of transaction cost analysis (trading 0015): what each execution cost, kept in
-- the time-series table trading_executioncost by trading_tca_refresh; each order's
-- implementation shortfall; aggregates with confidence intervals. trading/tca.py states the
-- definitions; in short, with s = +1 for a buy and -1 for a sell, p the fill's price:
--
--   arrival price A  the price prevailing at the order's creation (its first fill if that is
--                    earlier): the mid of the latest quote, else the latest trade, else the close
--                    of the latest minute bar ended by then, each within a day before it
--   slippage_bps     s * (p - A) / A * 1e4            a cost is positive
--   spread_paid_bps  s * (p - M) / M * 1e4            M the mid prevailing at the fill: the
--                                                     effective half-spread (negative: price
--                                                     improvement)
--   markout_h_bps    s * (R_h - p) / p * 1e4          R_h the price at fill + h: positive when
--                                                     the price moved our way (up after a buy)
--
-- R_h comes from quote ticks where the fill has a quote prevailing (the mid prevailing at
-- fill + h, within a day before it), else from minute bars (the close of the latest bar that
-- ended after the fill and by fill + h), named in markout_source; NULL while fill + h is
-- after the knowledge time, or with no data. A price read at another time u than the fill
-- (the arrival, R_h) is put in the fill's share basis across splits and stock dividends:
-- P_u * F(u) / F(fill), F the factor of marketdata_action_factors('split', known_at) at a time
-- (marketdata_factor_at); cash dividends are not adjusted.
--
-- Everything reads market data as known at p_known_at (the *_known_at reads), so a refresh
-- repeats; the books are read as they stand.
--
-- SECURITY INVOKER throughout: the caller's grants and row-level security apply to what is
-- read and written (a user refreshes the accounts they may write; the owner's commands all).
-- The lookups are plain SQL without settings, so that PostgreSQL inlines them into the
-- statement and each is an index scan per row.

-- The latest quote (both sides present) at or before p_at and at or after p_since, as known
-- at p_known_at.
CREATE OR REPLACE FUNCTION trading_tca_quote(
    p_instrument bigint, p_at timestamptz, p_since timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, mid double precision)
LANGUAGE sql STABLE AS $$
    SELECT t.ts, (t.bid + t.ask) / 2
    FROM marketdata_tick_known_at(p_known_at) t
    WHERE t.instrument_id = p_instrument AND t.kind = 'quote'
      AND t.ts <= p_at AND t.ts >= p_since
      AND t.bid > 0 AND t.ask > 0
    ORDER BY t.ts DESC, t.sequence DESC
    LIMIT 1
$$;

-- The latest trade's price at or before p_at and at or after p_since, as known at p_known_at.
CREATE OR REPLACE FUNCTION trading_tca_trade(
    p_instrument bigint, p_at timestamptz, p_since timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, price double precision)
LANGUAGE sql STABLE AS $$
    SELECT t.ts, t.price
    FROM marketdata_tick_known_at(p_known_at) t
    WHERE t.instrument_id = p_instrument AND t.kind = 'trade'
      AND t.ts <= p_at AND t.ts >= p_since AND t.price > 0
    ORDER BY t.ts DESC, t.sequence DESC
    LIMIT 1
$$;

-- The close of the latest minute bar ended (ts + 1 minute) at or before p_at, and started at
-- or after p_since, as known at p_known_at. Its time is the bar's end.
CREATE OR REPLACE FUNCTION trading_tca_bar(
    p_instrument bigint, p_at timestamptz, p_since timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, price double precision)
LANGUAGE sql STABLE AS $$
    SELECT b.ts + interval '1 minute', b.close
    FROM marketdata_minutebar_known_at(p_known_at) b
    WHERE b.instrument_id = p_instrument
      AND b.ts <= p_at - interval '1 minute' AND b.ts >= p_since
    ORDER BY b.ts DESC
    LIMIT 1
$$;

-- The price prevailing at p_at (within a day before it): the quote mid, else the last trade,
-- else the last minute bar's close, with its source and its time.
CREATE OR REPLACE FUNCTION trading_tca_price(
    p_instrument bigint, p_at timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, price double precision, source text)
LANGUAGE sql STABLE AS $$
    SELECT found.ts, found.price, found.source FROM (
        (SELECT q.ts, q.mid, 'quote_mid', 1
         FROM trading_tca_quote(p_instrument, p_at, p_at - interval '1 day', p_known_at) q)
        UNION ALL
        (SELECT t.ts, t.price, 'trade', 2
         FROM trading_tca_trade(p_instrument, p_at, p_at - interval '1 day', p_known_at) t)
        UNION ALL
        (SELECT b.ts, b.price, 'bar_close', 3
         FROM trading_tca_bar(p_instrument, p_at, p_at - interval '1 day', p_known_at) b)
    ) AS found (ts, price, source, rank)
    ORDER BY found.rank
    LIMIT 1
$$;

-- The executions whose costs are measured: fills and corrections that no bust or correction
-- has superseded since, in [p_start, p_end), of p_account (NULL: every account).
CREATE OR REPLACE FUNCTION trading_tca_live_executions(
    p_start timestamptz, p_end timestamptz, p_account bigint
) RETURNS SETOF trading_execution
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM trading_execution e
    WHERE e.executed_at >= p_start AND e.executed_at < p_end
      AND (p_account IS NULL OR e.account_id = p_account)
      AND e.kind IN ('fill', 'correction')
      AND NOT EXISTS (SELECT FROM trading_execution s WHERE s.supersedes_id = e.id)
$$;

-- The arguments every TCA function refuses, named with the function.
CREATE OR REPLACE FUNCTION trading_tca_check(
    function_name text, p_start timestamptz, p_end timestamptz
) RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_start IS NULL OR p_end IS NULL THEN
        RAISE EXCEPTION '%: start and end are required', function_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_end <= p_start THEN
        RAISE EXCEPTION '%: end (%) must be after start (%)', function_name, p_end, p_start
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- Refresh the costs of the executions of [p_start, p_end) (of p_account, NULL: all) as market
-- data was known at p_known_at: rows of executions no longer live go, the others are inserted
-- or restated where a number differs (an unchanged row keeps its computed_at and known_at, so
-- refreshing twice changes nothing). One statement each.
CREATE OR REPLACE FUNCTION trading_tca_refresh(
    p_start timestamptz, p_end timestamptz, p_account bigint, p_known_at timestamptz
) RETURNS TABLE (written bigint, removed bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
BEGIN
    PERFORM trading_tca_check('trading_tca_refresh', p_start, p_end);
    IF p_known_at IS NULL THEN
        RAISE EXCEPTION 'trading_tca_refresh: known_at is required (marketdata_settled_at())'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    DELETE FROM trading_executioncost c
    WHERE c.executed_at >= p_start AND c.executed_at < p_end
      AND (p_account IS NULL OR c.account_id = p_account)
      AND NOT EXISTS (SELECT FROM trading_tca_live_executions(p_start, p_end, p_account) e
                      WHERE e.id = c.execution_id);
    GET DIAGNOSTICS removed = ROW_COUNT;

    WITH live AS (
        SELECT e.id, e.order_id, e.account_id, e.instrument_id, e.side, e.quantity, e.price,
               e.liquidity, e.executed_at,
               CASE e.side WHEN 'buy' THEN 1 ELSE -1 END AS sign,
               least(o.created_at, e.executed_at) AS arrival_at
        FROM trading_tca_live_executions(p_start, p_end, p_account) e
        JOIN trading_order o ON o.id = e.order_id
    ),
    factors AS MATERIALIZED (
        SELECT f.* FROM marketdata_action_factors('split', p_known_at, NULL) f
        WHERE f.instrument_id IN (SELECT instrument_id FROM live)
    ),
    priced AS (
        SELECT l.*, a.price AS arrival_raw, coalesce(a.source, '') AS arrival_source,
               fq.mid AS mid_at_fill,
               marketdata_factor_at(l.arrival_at, f.bounds, f.price_factors)
                   / marketdata_factor_at(l.executed_at, f.bounds, f.price_factors)
                   AS arrival_basis,
               CASE WHEN fq.mid IS NOT NULL THEN 'ticks' ELSE 'minute_bars' END AS candidate,
               f.bounds, f.price_factors
        FROM live l
        LEFT JOIN factors f ON f.instrument_id = l.instrument_id
        LEFT JOIN LATERAL trading_tca_price(l.instrument_id, l.arrival_at, p_known_at) a
            ON true
        LEFT JOIN LATERAL trading_tca_quote(l.instrument_id, l.executed_at,
                                            l.executed_at - interval '1 day', p_known_at) fq
            ON true
    ),
    marked AS (
        -- The reference price at each horizon, in the fill's share basis (NULL: not known yet,
        -- or no data).
        SELECT p.*, r.refs
        FROM priced p
        CROSS JOIN LATERAL (
            SELECT array_agg(
                       ref.price * marketdata_factor_at(ref.ts, p.bounds, p.price_factors)
                       / marketdata_factor_at(p.executed_at, p.bounds, p.price_factors)
                       ORDER BY h.n) AS refs
            FROM unnest(ARRAY['1 second', '10 seconds', '1 minute', '5 minutes', '30 minutes',
                              '1 day']::interval[]) WITH ORDINALITY AS h (width, n)
            LEFT JOIN LATERAL (
                SELECT q.ts, q.mid AS price
                FROM trading_tca_quote(p.instrument_id, p.executed_at + h.width,
                                       p.executed_at + h.width - interval '1 day',
                                       p_known_at) q
                WHERE p.candidate = 'ticks' AND p.executed_at + h.width <= p_known_at
                UNION ALL
                SELECT b.ts, b.price
                FROM trading_tca_bar(p.instrument_id, p.executed_at + h.width,
                                     p.executed_at - interval '1 minute' + interval '1 microsecond',
                                     p_known_at) b
                WHERE p.candidate = 'minute_bars' AND p.executed_at + h.width <= p_known_at
            ) AS ref ON true
        ) AS r
    ),
    computed AS (
        SELECT m.id AS execution_id, m.order_id, m.account_id, m.instrument_id, m.side,
               m.quantity, m.price, abs(m.quantity) * m.price AS notional, m.liquidity,
               m.executed_at, m.arrival_at,
               m.arrival_raw * m.arrival_basis AS arrival_price, m.arrival_source,
               m.sign * (m.price::double precision - m.arrival_raw * m.arrival_basis)
                   / (m.arrival_raw * m.arrival_basis) * 1e4 AS slippage_bps,
               m.mid_at_fill,
               m.sign * (m.price::double precision - m.mid_at_fill) / m.mid_at_fill * 1e4
                   AS spread_paid_bps,
               m.refs,
               CASE WHEN m.candidate = 'ticks' OR EXISTS (
                        SELECT FROM unnest(m.refs) AS x WHERE x IS NOT NULL)
                    THEN m.candidate ELSE '' END AS markout_source
        FROM marked m
    )
    INSERT INTO trading_executioncost AS c (
        execution_id, order_id, account_id, instrument_id, side, quantity, price, notional,
        liquidity, executed_at, arrival_at, arrival_price, arrival_source, slippage_bps,
        mid_at_fill, spread_paid_bps, markout_1s_bps, markout_10s_bps, markout_1m_bps,
        markout_5m_bps, markout_30m_bps, markout_1d_bps, markout_source, computed_at, known_at)
    SELECT x.execution_id, x.order_id, x.account_id, x.instrument_id, x.side, x.quantity,
           x.price, x.notional, x.liquidity, x.executed_at, x.arrival_at, x.arrival_price,
           x.arrival_source, x.slippage_bps, x.mid_at_fill, x.spread_paid_bps,
           CASE x.side WHEN 'buy' THEN 1 ELSE -1 END
               * (x.refs[1] - x.price::double precision) / x.price::double precision * 1e4,
           CASE x.side WHEN 'buy' THEN 1 ELSE -1 END
               * (x.refs[2] - x.price::double precision) / x.price::double precision * 1e4,
           CASE x.side WHEN 'buy' THEN 1 ELSE -1 END
               * (x.refs[3] - x.price::double precision) / x.price::double precision * 1e4,
           CASE x.side WHEN 'buy' THEN 1 ELSE -1 END
               * (x.refs[4] - x.price::double precision) / x.price::double precision * 1e4,
           CASE x.side WHEN 'buy' THEN 1 ELSE -1 END
               * (x.refs[5] - x.price::double precision) / x.price::double precision * 1e4,
           CASE x.side WHEN 'buy' THEN 1 ELSE -1 END
               * (x.refs[6] - x.price::double precision) / x.price::double precision * 1e4,
           x.markout_source, clock_timestamp(), p_known_at
    FROM computed x
    ON CONFLICT (execution_id, executed_at) DO UPDATE SET
        order_id = EXCLUDED.order_id, account_id = EXCLUDED.account_id,
        instrument_id = EXCLUDED.instrument_id, side = EXCLUDED.side,
        quantity = EXCLUDED.quantity, price = EXCLUDED.price, notional = EXCLUDED.notional,
        liquidity = EXCLUDED.liquidity, arrival_at = EXCLUDED.arrival_at,
        arrival_price = EXCLUDED.arrival_price, arrival_source = EXCLUDED.arrival_source,
        slippage_bps = EXCLUDED.slippage_bps, mid_at_fill = EXCLUDED.mid_at_fill,
        spread_paid_bps = EXCLUDED.spread_paid_bps, markout_1s_bps = EXCLUDED.markout_1s_bps,
        markout_10s_bps = EXCLUDED.markout_10s_bps, markout_1m_bps = EXCLUDED.markout_1m_bps,
        markout_5m_bps = EXCLUDED.markout_5m_bps, markout_30m_bps = EXCLUDED.markout_30m_bps,
        markout_1d_bps = EXCLUDED.markout_1d_bps, markout_source = EXCLUDED.markout_source,
        computed_at = EXCLUDED.computed_at, known_at = EXCLUDED.known_at
    -- Only a row whose numbers differ is restated: an unchanged one keeps the knowledge time
    -- it was first computed at, which repeats it.
    WHERE (c.order_id, c.account_id, c.instrument_id, c.side, c.quantity, c.price, c.notional,
           c.liquidity, c.arrival_at, c.arrival_price, c.arrival_source, c.slippage_bps,
           c.mid_at_fill, c.spread_paid_bps, c.markout_1s_bps, c.markout_10s_bps,
           c.markout_1m_bps, c.markout_5m_bps, c.markout_30m_bps, c.markout_1d_bps,
           c.markout_source)
          IS DISTINCT FROM
          (EXCLUDED.order_id, EXCLUDED.account_id, EXCLUDED.instrument_id, EXCLUDED.side,
           EXCLUDED.quantity, EXCLUDED.price, EXCLUDED.notional, EXCLUDED.liquidity,
           EXCLUDED.arrival_at, EXCLUDED.arrival_price, EXCLUDED.arrival_source,
           EXCLUDED.slippage_bps, EXCLUDED.mid_at_fill, EXCLUDED.spread_paid_bps,
           EXCLUDED.markout_1s_bps, EXCLUDED.markout_10s_bps, EXCLUDED.markout_1m_bps,
           EXCLUDED.markout_5m_bps, EXCLUDED.markout_30m_bps, EXCLUDED.markout_1d_bps,
           EXCLUDED.markout_source);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN NEXT;
END
$$;

-- Each order created in [p_start, p_end) (of p_account) with its implementation shortfall,
-- in the order's currency and in bps of the decision notional (d x quantity):
--   execution cost   sum over live fills of s * (p_i - d) * |q_i|
--   fees             sum of the live fills' fees
--   opportunity      s * (C - d) * unfilled, C the price prevailing at the close: the end of
--                    the order's UTC day (or the knowledge time if earlier)
-- The decision price d is the arrival price: orders record no decision price of their own.
CREATE OR REPLACE FUNCTION trading_tca_shortfall(
    p_start timestamptz, p_end timestamptz, p_account bigint, p_known_at timestamptz
) RETURNS TABLE (
    order_id bigint, account_id bigint, instrument_id bigint, side text, quantity numeric,
    filled numeric, decision_price double precision, arrival_price double precision,
    arrival_source text, average_fill numeric, fees numeric, close_price double precision,
    execution_cost double precision, opportunity_cost double precision,
    shortfall double precision, decision_notional double precision,
    shortfall_bps double precision
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
BEGIN
    PERFORM trading_tca_check('trading_tca_shortfall', p_start, p_end);
    RETURN QUERY
    WITH orders AS (
        SELECT o.id, o.account_id, o.instrument_id, o.side::text AS side, o.quantity,
               CASE o.side WHEN 'buy' THEN 1 ELSE -1 END AS sign,
               least(o.created_at, (SELECT min(e.executed_at) FROM trading_execution e
                                    WHERE e.order_id = o.id)) AS arrival_at,
               least(date_trunc('day', o.created_at) + interval '1 day',
                     coalesce(p_known_at, clock_timestamp())) AS close_at
        FROM trading_order o
        WHERE o.created_at >= p_start AND o.created_at < p_end
          AND (p_account IS NULL OR o.account_id = p_account)
    ),
    fills AS (
        SELECT e.order_id, sum(abs(e.quantity)) AS filled,
               sum(abs(e.quantity) * e.price) AS paid, sum(e.fee) AS fees
        FROM trading_execution e
        WHERE e.order_id IN (SELECT id FROM orders) AND e.kind IN ('fill', 'correction')
          AND NOT EXISTS (SELECT FROM trading_execution s WHERE s.supersedes_id = e.id)
        GROUP BY e.order_id
    ),
    valued AS (
        SELECT o.*, coalesce(f.filled, 0) AS filled, f.paid, coalesce(f.fees, 0) AS fees,
               a.price AS arrival, a.source AS arrival_source, c.price AS close
        FROM orders o
        LEFT JOIN fills f ON f.order_id = o.id
        LEFT JOIN LATERAL trading_tca_price(o.instrument_id, o.arrival_at,
                                            coalesce(p_known_at, clock_timestamp())) a ON true
        LEFT JOIN LATERAL trading_tca_price(o.instrument_id, o.close_at,
                                            coalesce(p_known_at, clock_timestamp())) c ON true
    ),
    costs AS (
        SELECT v.*,
               v.sign * (coalesce(v.paid, 0)::double precision
                         - v.arrival * v.filled::double precision) AS execution_cost,
               CASE WHEN v.quantity > v.filled
                    THEN v.sign * (v.close - v.arrival)
                         * (v.quantity - v.filled)::double precision
                    ELSE 0 END AS opportunity_cost,
               v.arrival * v.quantity::double precision AS decision_notional
        FROM valued v
    )
    SELECT c.id, c.account_id, c.instrument_id, c.side, c.quantity, c.filled, c.arrival,
           c.arrival, coalesce(c.arrival_source, ''),
           CASE WHEN c.filled > 0 THEN round(c.paid / c.filled, 8) END, c.fees, c.close,
           c.execution_cost, c.opportunity_cost,
           c.execution_cost + c.fees::double precision + c.opportunity_cost,
           c.decision_notional,
           (c.execution_cost + c.fees::double precision + c.opportunity_cost)
               / c.decision_notional * 1e4
    FROM costs c
    ORDER BY c.id;
END
$$;

-- The costs of [p_start, p_end) (of p_account) grouped by p_dimension (account, instrument,
-- side, liquidity, size, or all), one row per group and measure: the executions counted, the
-- group's notional, the measure's notional-weighted mean over the rows that have it (n), and a
-- 95% confidence interval of that mean: mean +- 1.96 * SE with
--   SE = sqrt(n / (n - 1) * sum(w_i^2 * (x_i - mean)^2)) / sum(w_i)
-- (the ratio estimator's standard error with weights w_i = notional; NULL below two rows).
CREATE OR REPLACE FUNCTION trading_tca_summary(
    p_dimension text, p_start timestamptz, p_end timestamptz, p_account bigint
) RETURNS TABLE (
    grp text, measure text, executions bigint, notional numeric, n bigint,
    mean double precision, ci_low double precision, ci_high double precision
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
BEGIN
    PERFORM trading_tca_check('trading_tca_summary', p_start, p_end);
    IF p_dimension IS NULL
       OR p_dimension NOT IN ('account', 'instrument', 'side', 'liquidity', 'size', 'all') THEN
        RAISE EXCEPTION 'trading_tca_summary: dimension must be one of account, instrument,'
            ' side, liquidity, size, all, not %', coalesce(p_dimension, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH scoped AS (
        SELECT CASE p_dimension
                   WHEN 'account' THEN a.name::text
                   WHEN 'instrument' THEN i.symbol::text
                   WHEN 'side' THEN c.side::text
                   WHEN 'liquidity' THEN c.liquidity::text
                   WHEN 'size' THEN CASE WHEN c.notional < 10000 THEN '< 10k'
                                         WHEN c.notional < 100000 THEN '10k-100k'
                                         WHEN c.notional < 1000000 THEN '100k-1M'
                                         ELSE '>= 1M' END
                   ELSE 'all' END AS grp,
               c.*
        FROM trading_executioncost c
        JOIN trading_account a ON a.id = c.account_id
        JOIN marketdata_instrument i ON i.id = c.instrument_id
        WHERE c.executed_at >= p_start AND c.executed_at < p_end
          AND (p_account IS NULL OR c.account_id = p_account)
    ),
    groups AS (
        SELECT r.grp, count(*) AS executions, sum(r.notional) AS notional
        FROM scoped r GROUP BY r.grp
    ),
    measured AS (
        SELECT r.grp, m.measure, m.ord, r.notional::double precision AS w, m.x
        FROM scoped r
        CROSS JOIN LATERAL (VALUES
            ('slippage', 1, r.slippage_bps), ('spread_paid', 2, r.spread_paid_bps),
            ('markout_1s', 3, r.markout_1s_bps), ('markout_10s', 4, r.markout_10s_bps),
            ('markout_1m', 5, r.markout_1m_bps), ('markout_5m', 6, r.markout_5m_bps),
            ('markout_30m', 7, r.markout_30m_bps), ('markout_1d', 8, r.markout_1d_bps)
        ) AS m (measure, ord, x)
    ),
    means AS (
        SELECT v.grp, v.measure, v.ord, count(v.x) AS n,
               sum(v.w * v.x) / nullif(sum(v.w) FILTER (WHERE v.x IS NOT NULL), 0) AS mean
        FROM measured v GROUP BY v.grp, v.measure, v.ord
    ),
    spread AS (
        SELECT m.grp, m.measure, m.ord, m.n, m.mean,
               CASE WHEN m.n >= 2 THEN
                   sqrt(m.n::double precision / (m.n - 1)
                        * sum(v.w * v.w * (v.x - m.mean) ^ 2))
                   / sum(v.w) FILTER (WHERE v.x IS NOT NULL) END AS se
        FROM means m
        JOIN measured v ON v.grp = m.grp AND v.measure = m.measure
        GROUP BY m.grp, m.measure, m.ord, m.n, m.mean
    )
    SELECT s.grp, s.measure, g.executions, g.notional, s.n, s.mean,
           s.mean - 1.96 * s.se, s.mean + 1.96 * s.se
    FROM spread s JOIN groups g ON g.grp = s.grp
    ORDER BY s.grp, s.ord;
END
$$;

-- Row-level security as on the executions (trading/sql/security/0003.sql): a user sees and
-- refreshes the costs of the accounts their groups are granted; auditors read every account's
-- and write none; commands all; nobody declared nothing.
ALTER TABLE "trading_executioncost" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_executioncost";
DROP POLICY IF EXISTS account_insert ON "trading_executioncost";
DROP POLICY IF EXISTS account_update ON "trading_executioncost";
DROP POLICY IF EXISTS account_delete ON "trading_executioncost";
CREATE POLICY account_read ON "trading_executioncost"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_executioncost"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "trading_executioncost"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_executioncost"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

--
-- Add field agent to executioncost
--
SET CONSTRAINTS "trading_executioncost_agent_id_8f51c6b6_fk_signals_agent_id" IMMEDIATE; ALTER TABLE "trading_executioncost" DROP CONSTRAINT "trading_executioncost_agent_id_8f51c6b6_fk_signals_agent_id";
ALTER TABLE "trading_executioncost" DROP COLUMN "agent_id" CASCADE;
--
-- Add field strategy to executioncost
--
ALTER TABLE "trading_executioncost" DROP COLUMN "strategy" CASCADE;
--
-- Add field venue to executioncost
--
ALTER TABLE "trading_executioncost" DROP COLUMN "venue" CASCADE;
--
-- Create constraint order_decision_price_positive on model order
--
ALTER TABLE "trading_order" DROP CONSTRAINT "order_decision_price_positive";
--
-- Add field decision_price to order
--
ALTER TABLE "trading_order" DROP COLUMN "decision_price" CASCADE;
--
-- Add field agent to order
--
SET CONSTRAINTS "trading_order_agent_id_6598edf7_fk_signals_agent_id" IMMEDIATE; ALTER TABLE "trading_order" DROP CONSTRAINT "trading_order_agent_id_6598edf7_fk_signals_agent_id";
ALTER TABLE "trading_order" DROP COLUMN "agent_id" CASCADE;
--
-- Add field strategy to order
--
ALTER TABLE "trading_order" DROP COLUMN "strategy" CASCADE;
--
-- Add field venue to execution
--
ALTER TABLE "trading_execution" DROP COLUMN "venue" CASCADE;
COMMIT;
