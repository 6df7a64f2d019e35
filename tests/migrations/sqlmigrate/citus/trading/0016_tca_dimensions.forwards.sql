BEGIN;
--
-- Add field venue to execution
--
ALTER TABLE "trading_execution" ADD COLUMN "venue" varchar(16) DEFAULT '' NOT NULL;
--
-- Add field strategy to order
--
ALTER TABLE "trading_order" ADD COLUMN "strategy" varchar(100) DEFAULT '' NOT NULL;
--
-- Add field agent to order
--
ALTER TABLE "trading_order" ADD COLUMN "agent_id" bigint NULL CONSTRAINT "trading_order_agent_id_6598edf7_fk_signals_agent_id" REFERENCES "signals_agent"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "trading_order_agent_id_6598edf7_fk_signals_agent_id" IMMEDIATE;
--
-- Add field decision_price to order
--
ALTER TABLE "trading_order" ADD COLUMN "decision_price" numeric(20, 8) NULL;
--
-- Create constraint order_decision_price_positive on model order
--
ALTER TABLE "trading_order" ADD CONSTRAINT "order_decision_price_positive" CHECK (("decision_price" IS NULL OR "decision_price" > 0));
--
-- Add field venue to executioncost
--
ALTER TABLE "trading_executioncost" ADD COLUMN "venue" varchar(16) DEFAULT '' NOT NULL;
--
-- Add field strategy to executioncost
--
ALTER TABLE "trading_executioncost" ADD COLUMN "strategy" varchar(100) DEFAULT '' NOT NULL;
--
-- Add field agent to executioncost
--
ALTER TABLE "trading_executioncost" ADD COLUMN "agent_id" bigint NULL CONSTRAINT "trading_executioncost_agent_id_8f51c6b6_fk_signals_agent_id" REFERENCES "signals_agent"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "trading_executioncost_agent_id_8f51c6b6_fk_signals_agent_id" IMMEDIATE;
--
-- Raw SQL operation
--
-- Version 0016 of transaction cost analysis (trading 0016). As version 0015, and:
--
--   * each cost row carries its execution's venue and its order's strategy and agent, and
--     trading_tca_summary groups by them (a blank venue is '(unknown)', a blank strategy or
--     no agent '(none)');
--   * trading_tca_shortfall measures from the order's decision price where it records one
--     (decision_source 'order'), else from the arrival price ('arrival');
--   * a price read across a cash dividend's ex moment is put back in the fill's terms by the
--     dividend: a reference price R read after the fill, across an ex moment, is R + D (a
--     holder of the share filled has the ex share and the dividend), an arrival price read
--     before it across one is A - D; D in the fill's share basis (D * F(ex) / F(fill), F the
--     split factors). So a markout across an ex-date does not show the drop;
--   * restatement without waiting for the after-close job: a bust or a correction takes the
--     superseded execution's cost row out in its own transaction (trading_tca_superseded, a
--     statement trigger on the executions), and it, a revision of the ticks or minute bars an
--     execution's costs read (the revision tables' statement triggers) or a corporate action
--     stated, restated or withdrawn queue the ranges they touch in trading_tcapending, which
--     trading_tca_refresh_pending (manage.py tca --pending, the job tca-pending) refreshes and
--     empties in one transaction;
--   * every refresh is one set-based restatement of a set of scopes (trading_tca_restate):
--     trading_tca_refresh is the one-scope case;
--   * the lookups read the day of their time first, then the rest of the day before it, a
--     step only when the one before found nothing (LATERAL steps gated by one-time filters,
--     as the as-of reads do): a quote within the day reads one partition or chunk, not two,
--     and a price from quotes never looks for a trade or a bar. Measured on 3,000 executions
--     against 518,400 ticks over 3 days: the refresh read 220,000 buffers instead of 283,000
--     (time not measurable on the shared machine). Same answers, same indexes
--     (tick_quote_by_time for quotes), market data as known at p_known_at throughout.

-- The latest quote (both sides present) at or before p_at and at or after p_since, as known
-- at p_known_at: within p_at's UTC day first (one partition or chunk), then, if there is
-- none, before it (a one-time filter: the second step is not run when the first finds one).
CREATE OR REPLACE FUNCTION trading_tca_quote(
    p_instrument bigint, p_at timestamptz, p_since timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, mid double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(near.ts, far.ts), coalesce(near.mid, far.mid)
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT t.ts, (t.bid + t.ask) / 2 AS mid
        FROM marketdata_tick_known_at(p_known_at) t
        WHERE t.instrument_id = p_instrument AND t.kind = 'quote'
          AND t.ts <= p_at AND t.ts >= greatest(p_since, date_trunc('day', p_at, 'UTC'))
          AND t.bid > 0 AND t.ask > 0
        ORDER BY t.ts DESC, t.sequence DESC
        LIMIT 1
    ) AS near ON true
    LEFT JOIN LATERAL (
        SELECT t.ts, (t.bid + t.ask) / 2 AS mid
        FROM marketdata_tick_known_at(p_known_at) t
        WHERE near.ts IS NULL
          AND t.instrument_id = p_instrument AND t.kind = 'quote'
          AND t.ts < date_trunc('day', p_at, 'UTC') AND t.ts <= p_at AND t.ts >= p_since
          AND t.bid > 0 AND t.ask > 0
        ORDER BY t.ts DESC, t.sequence DESC
        LIMIT 1
    ) AS far ON true
    WHERE coalesce(near.ts, far.ts) IS NOT NULL
$$;

-- The latest trade's price at or before p_at and at or after p_since, as known at p_known_at
-- (the day of p_at first, then before it).
CREATE OR REPLACE FUNCTION trading_tca_trade(
    p_instrument bigint, p_at timestamptz, p_since timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, price double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(near.ts, far.ts), coalesce(near.price, far.price)
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT t.ts, t.price
        FROM marketdata_tick_known_at(p_known_at) t
        WHERE t.instrument_id = p_instrument AND t.kind = 'trade'
          AND t.ts <= p_at AND t.ts >= greatest(p_since, date_trunc('day', p_at, 'UTC'))
          AND t.price > 0
        ORDER BY t.ts DESC, t.sequence DESC
        LIMIT 1
    ) AS near ON true
    LEFT JOIN LATERAL (
        SELECT t.ts, t.price
        FROM marketdata_tick_known_at(p_known_at) t
        WHERE near.ts IS NULL
          AND t.instrument_id = p_instrument AND t.kind = 'trade'
          AND t.ts < date_trunc('day', p_at, 'UTC') AND t.ts <= p_at AND t.ts >= p_since
          AND t.price > 0
        ORDER BY t.ts DESC, t.sequence DESC
        LIMIT 1
    ) AS far ON true
    WHERE coalesce(near.ts, far.ts) IS NOT NULL
$$;

-- The close of the latest minute bar ended (ts + 1 minute) at or before p_at, and started at
-- or after p_since, as known at p_known_at (bars started on the day of its start first, then
-- before). Its time is the bar's end.
CREATE OR REPLACE FUNCTION trading_tca_bar(
    p_instrument bigint, p_at timestamptz, p_since timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, price double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(near.ts, far.ts) + interval '1 minute', coalesce(near.close, far.close)
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT b.ts, b.close
        FROM marketdata_minutebar_known_at(p_known_at) b
        WHERE b.instrument_id = p_instrument
          AND b.ts <= p_at - interval '1 minute'
          AND b.ts >= greatest(p_since, date_trunc('day', p_at - interval '1 minute', 'UTC'))
        ORDER BY b.ts DESC
        LIMIT 1
    ) AS near ON true
    LEFT JOIN LATERAL (
        SELECT b.ts, b.close
        FROM marketdata_minutebar_known_at(p_known_at) b
        WHERE near.ts IS NULL
          AND b.instrument_id = p_instrument
          AND b.ts < date_trunc('day', p_at - interval '1 minute', 'UTC')
          AND b.ts <= p_at - interval '1 minute' AND b.ts >= p_since
        ORDER BY b.ts DESC
        LIMIT 1
    ) AS far ON true
    WHERE coalesce(near.ts, far.ts) IS NOT NULL
$$;

-- The price prevailing at p_at (within a day before it): the quote mid, else the last trade,
-- else the last minute bar's close, with its source and its time. Each step runs only when
-- the one before found nothing.
CREATE OR REPLACE FUNCTION trading_tca_price(
    p_instrument bigint, p_at timestamptz, p_known_at timestamptz
) RETURNS TABLE (ts timestamptz, price double precision, source text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(q.ts, t.ts, b.ts), coalesce(q.mid, t.price, b.price),
           CASE WHEN q.ts IS NOT NULL THEN 'quote_mid'
                WHEN t.ts IS NOT NULL THEN 'trade' ELSE 'bar_close' END
    FROM (SELECT) AS one
    LEFT JOIN LATERAL trading_tca_quote(p_instrument, p_at, p_at - interval '1 day',
                                        p_known_at) q ON true
    LEFT JOIN LATERAL (
        SELECT t.ts, t.price
        FROM trading_tca_trade(p_instrument, p_at, p_at - interval '1 day', p_known_at) t
        WHERE q.ts IS NULL) t ON true
    LEFT JOIN LATERAL (
        SELECT b.ts, b.price
        FROM trading_tca_bar(p_instrument, p_at, p_at - interval '1 day', p_known_at) b
        WHERE q.ts IS NULL AND t.ts IS NULL) b ON true
    WHERE coalesce(q.ts, t.ts, b.ts) IS NOT NULL
$$;

-- The queue of ranges to refresh again: the executions of [first_at, end_at) of an account
-- and/or an instrument (NULL: any), each with what queued it and, for a market data change,
-- the moment it was known from (stamp: a refresh reading market data as known before then
-- would not see it, so it waits). Written only by the triggers below, which run as the
-- owner; no role is granted anything on it (it is not a model's table).
CREATE TABLE IF NOT EXISTS trading_tcapending (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint,
    instrument_id bigint,
    first_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    cause text NOT NULL,
    stamp timestamptz,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT tcapending_range_ordered CHECK (end_at > first_at)
);
REVOKE ALL ON trading_tcapending FROM PUBLIC;

-- The executions of a set of scopes: scope k is [p_starts[k], p_ends[k]) of p_accounts[k]
-- and p_instruments[k] (NULL: any); each execution once, whichever scopes hold it. Fills and
-- corrections that no bust or correction has superseded since.
CREATE OR REPLACE FUNCTION trading_tca_scoped_executions(
    p_starts timestamptz[], p_ends timestamptz[], p_accounts bigint[], p_instruments bigint[]
) RETURNS SETOF trading_execution
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM trading_execution e
    WHERE e.id IN (
        SELECT x.id
        FROM unnest(p_starts, p_ends, p_accounts, p_instruments) AS s (first, stop, account,
                                                                       instrument)
        JOIN trading_execution x
          ON x.executed_at >= s.first AND x.executed_at < s.stop
         AND (s.account IS NULL OR x.account_id = s.account)
         AND (s.instrument IS NULL OR x.instrument_id = s.instrument))
      AND e.kind IN ('fill', 'correction')
      AND NOT EXISTS (SELECT FROM trading_execution s WHERE s.supersedes_id = e.id)
$$;

-- The cash dividends of p_ex_ats (with their amounts p_amounts, per share of their ex moment)
-- going ex in (p_after, p_by], in the share basis of p_basis_at: sum(D * F(ex) / F(basis)).
-- 0 with none.
CREATE OR REPLACE FUNCTION trading_tca_dividends(
    p_after timestamptz, p_by timestamptz, p_basis_at timestamptz, p_ex_ats timestamptz[],
    p_amounts double precision[], p_bounds timestamptz[], p_factors double precision[]
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(d.amount * marketdata_factor_at(d.ex_at, p_bounds, p_factors)), 0)
           / marketdata_factor_at(p_basis_at, p_bounds, p_factors)
    FROM unnest(p_ex_ats, p_amounts) AS d (ex_at, amount)
    WHERE d.ex_at > p_after AND d.ex_at <= p_by
$$;

-- Restate the costs of the executions of a set of scopes (trading_tca_scoped_executions) as
-- market data was known at p_known_at: rows of executions no longer live go, the others are
-- inserted or restated where a number differs (an unchanged row keeps its computed_at and
-- known_at, so restating twice changes nothing). One statement each, whatever the scopes.
CREATE OR REPLACE FUNCTION trading_tca_restate(
    p_starts timestamptz[], p_ends timestamptz[], p_accounts bigint[], p_instruments bigint[],
    p_known_at timestamptz
) RETURNS TABLE (written bigint, removed bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
BEGIN
    IF p_known_at IS NULL THEN
        RAISE EXCEPTION 'trading_tca_restate: known_at is required (marketdata_settled_at())'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF cardinality(p_starts) IS DISTINCT FROM cardinality(p_ends)
       OR cardinality(p_starts) IS DISTINCT FROM cardinality(p_accounts)
       OR cardinality(p_starts) IS DISTINCT FROM cardinality(p_instruments) THEN
        RAISE EXCEPTION 'trading_tca_restate: starts, ends, accounts and instruments must be'
            ' as many' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- A bust committing while this runs would find the row it deletes not yet written, and
    -- this would write it back from its older view: the bust's trigger takes this lock
    -- shared, so one waits for the other, and the statements below see a bust committed.
    PERFORM pg_advisory_xact_lock(hashtext('trading_tca:restate'));

    -- The scope's rows whose execution is no longer live (busted, corrected).
    DELETE FROM trading_executioncost c
    USING unnest(p_starts, p_ends, p_accounts, p_instruments) AS s (first, stop, account,
                                                                    instrument)
    WHERE c.executed_at >= s.first AND c.executed_at < s.stop
      AND (s.account IS NULL OR c.account_id = s.account)
      AND (s.instrument IS NULL OR c.instrument_id = s.instrument)
      AND NOT EXISTS (SELECT FROM trading_execution e
                      WHERE e.id = c.execution_id AND e.kind IN ('fill', 'correction')
                        AND NOT EXISTS (SELECT FROM trading_execution x
                                        WHERE x.supersedes_id = e.id));
    GET DIAGNOSTICS removed = ROW_COUNT;

    WITH live AS MATERIALIZED (
        SELECT e.id, e.order_id, e.account_id, e.instrument_id, e.side, e.quantity, e.price,
               e.liquidity, e.venue, o.strategy, o.agent_id, e.executed_at,
               CASE e.side WHEN 'buy' THEN 1 ELSE -1 END AS sign,
               least(o.created_at, e.executed_at) AS arrival_at
        FROM trading_tca_scoped_executions(p_starts, p_ends, p_accounts, p_instruments) e
        JOIN trading_order o ON o.id = e.order_id
    ),
    factors AS MATERIALIZED (
        SELECT f.* FROM marketdata_action_factors('split', p_known_at, NULL) f
        WHERE f.instrument_id IN (SELECT instrument_id FROM live)
    ),
    dividends AS MATERIALIZED (
        -- The cash dividends known then, at their ex moments, of the instruments filled.
        SELECT a.instrument_id, marketdata_ex_moment(a.instrument_id, a.ex_date) AS ex_at,
               a.amount::double precision AS amount
        FROM marketdata_actions_known_at(p_known_at) a
        WHERE a.kind = 'cash_dividend' AND a.amount > 0
          AND a.instrument_id IN (SELECT instrument_id FROM live)
    ),
    crossed AS (
        -- Each execution's dividends that a price it reads may cross: from a day before its
        -- arrival (the earliest arrival price read) to a day after it (the last markout).
        SELECT l.id, array_agg(d.ex_at ORDER BY d.ex_at) AS ex_ats,
               array_agg(d.amount ORDER BY d.ex_at) AS amounts
        FROM live l
        JOIN dividends d ON d.instrument_id = l.instrument_id
         AND d.ex_at > l.arrival_at - interval '1 day'
         AND d.ex_at <= l.executed_at + interval '1 day'
        GROUP BY l.id
    ),
    priced AS (
        SELECT l.*, coalesce(a.source, '') AS arrival_source, fq.mid AS mid_at_fill,
               -- The arrival price in the fill's terms: its share basis, less the dividends
               -- that went ex between it and the fill.
               -- A dividend as large as the price leaves none: NULL, not a division by 0.
               nullif(greatest(
                   a.price * marketdata_factor_at(a.ts, f.bounds, f.price_factors)
                       / marketdata_factor_at(l.executed_at, f.bounds, f.price_factors)
                   - CASE WHEN dv.id IS NULL THEN 0
                          ELSE trading_tca_dividends(a.ts, l.executed_at, l.executed_at,
                                                     dv.ex_ats, dv.amounts, f.bounds,
                                                     f.price_factors) END,
                   0), 0) AS arrival_price,
               CASE WHEN fq.mid IS NOT NULL THEN 'ticks' ELSE 'minute_bars' END AS candidate,
               f.bounds, f.price_factors, dv.ex_ats, dv.amounts
        FROM live l
        LEFT JOIN factors f ON f.instrument_id = l.instrument_id
        LEFT JOIN crossed dv ON dv.id = l.id
        LEFT JOIN LATERAL trading_tca_price(l.instrument_id, l.arrival_at, p_known_at) a
            ON true
        LEFT JOIN LATERAL trading_tca_quote(l.instrument_id, l.executed_at,
                                            l.executed_at - interval '1 day', p_known_at) fq
            ON true
    ),
    marked AS (
        -- The reference price at each horizon in the fill's terms: its share basis, plus the
        -- dividends gone ex since the fill (NULL: not known yet, or no data).
        SELECT p.*, r.refs
        FROM priced p
        CROSS JOIN LATERAL (
            SELECT array_agg(
                       ref.price * marketdata_factor_at(ref.ts, p.bounds, p.price_factors)
                       / marketdata_factor_at(p.executed_at, p.bounds, p.price_factors)
                       + CASE WHEN p.ex_ats IS NULL THEN 0
                              ELSE trading_tca_dividends(p.executed_at, ref.ts, p.executed_at,
                                                         p.ex_ats, p.amounts, p.bounds,
                                                         p.price_factors) END
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
               m.venue, m.strategy, m.agent_id, m.executed_at, m.arrival_at, m.arrival_price,
               m.arrival_source,
               m.sign * (m.price::double precision - m.arrival_price) / m.arrival_price * 1e4
                   AS slippage_bps,
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
        liquidity, venue, strategy, agent_id, executed_at, arrival_at, arrival_price,
        arrival_source, slippage_bps, mid_at_fill, spread_paid_bps, markout_1s_bps,
        markout_10s_bps, markout_1m_bps, markout_5m_bps, markout_30m_bps, markout_1d_bps,
        markout_source, computed_at, known_at)
    SELECT x.execution_id, x.order_id, x.account_id, x.instrument_id, x.side, x.quantity,
           x.price, x.notional, x.liquidity, x.venue, x.strategy, x.agent_id, x.executed_at,
           x.arrival_at, x.arrival_price, x.arrival_source, x.slippage_bps, x.mid_at_fill,
           x.spread_paid_bps,
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
        liquidity = EXCLUDED.liquidity, venue = EXCLUDED.venue, strategy = EXCLUDED.strategy,
        agent_id = EXCLUDED.agent_id, arrival_at = EXCLUDED.arrival_at,
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
           c.liquidity, c.venue, c.strategy, c.agent_id, c.arrival_at, c.arrival_price,
           c.arrival_source, c.slippage_bps, c.mid_at_fill, c.spread_paid_bps,
           c.markout_1s_bps, c.markout_10s_bps, c.markout_1m_bps, c.markout_5m_bps,
           c.markout_30m_bps, c.markout_1d_bps, c.markout_source)
          IS DISTINCT FROM
          (EXCLUDED.order_id, EXCLUDED.account_id, EXCLUDED.instrument_id, EXCLUDED.side,
           EXCLUDED.quantity, EXCLUDED.price, EXCLUDED.notional, EXCLUDED.liquidity,
           EXCLUDED.venue, EXCLUDED.strategy, EXCLUDED.agent_id, EXCLUDED.arrival_at,
           EXCLUDED.arrival_price, EXCLUDED.arrival_source, EXCLUDED.slippage_bps,
           EXCLUDED.mid_at_fill, EXCLUDED.spread_paid_bps, EXCLUDED.markout_1s_bps,
           EXCLUDED.markout_10s_bps, EXCLUDED.markout_1m_bps, EXCLUDED.markout_5m_bps,
           EXCLUDED.markout_30m_bps, EXCLUDED.markout_1d_bps, EXCLUDED.markout_source);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN NEXT;
END
$$;

-- Refresh the costs of the executions of [p_start, p_end) (of p_account, NULL: all) as market
-- data was known at p_known_at: the one-scope restatement.
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
    RETURN QUERY
    SELECT r.written, r.removed
    FROM trading_tca_restate(ARRAY[p_start], ARRAY[p_end], ARRAY[p_account],
                             ARRAY[NULL::bigint], p_known_at) r;
END
$$;

-- Refresh what the queue holds that market data as known at p_known_at can say (a market
-- data change known later waits for a later run), and take it off the queue, in the caller's
-- transaction: a failed refresh leaves the queue as it was. How many queued ranges it took,
-- and the rows written and removed.
CREATE OR REPLACE FUNCTION trading_tca_refresh_pending(p_known_at timestamptz)
RETURNS TABLE (ranges bigint, written bigint, removed bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
DECLARE
    starts timestamptz[];
    ends timestamptz[];
    accounts bigint[];
    instruments bigint[];
BEGIN
    IF p_known_at IS NULL THEN
        RAISE EXCEPTION 'trading_tca_refresh_pending: known_at is required'
            ' (marketdata_settled_at())' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    WITH taken AS (
        DELETE FROM trading_tcapending q
        WHERE q.stamp IS NULL OR q.stamp <= p_known_at
        RETURNING q.first_at, q.end_at, q.account_id, q.instrument_id
    )
    SELECT count(*), array_agg(t.first_at), array_agg(t.end_at), array_agg(t.account_id),
           array_agg(t.instrument_id)
    INTO ranges, starts, ends, accounts, instruments
    FROM taken t;
    written := 0;
    removed := 0;
    IF ranges > 0 THEN
        SELECT r.written, r.removed INTO written, removed
        FROM trading_tca_restate(starts, ends, accounts, instruments, p_known_at) r;
    END IF;
    RETURN NEXT;
END
$$;

-- A bust or a correction booked: the cost row of the execution it supersedes goes in the same
-- transaction, so nobody reads what a busted fill cost; the superseded and the new
-- execution's range of its account and instrument is queued (a correction gets its row from
-- the next pending refresh). Runs as the owner: the application may not write the costs.
CREATE OR REPLACE FUNCTION trading_tca_superseded() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM booked WHERE supersedes_id IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    -- Not while a restatement runs (trading_tca_restate says why); busts do not wait on
    -- each other.
    PERFORM pg_advisory_xact_lock_shared(hashtext('trading_tca:restate'));
    WITH superseded AS MATERIALIZED (
        SELECT s.id, s.executed_at, s.account_id, s.instrument_id, b.executed_at AS new_at
        FROM booked b JOIN trading_execution s ON s.id = b.supersedes_id
    ),
    gone AS (
        DELETE FROM trading_executioncost c USING superseded s
        WHERE c.execution_id = s.id AND c.executed_at = s.executed_at
    )
    INSERT INTO trading_tcapending (account_id, instrument_id, first_at, end_at, cause)
    SELECT s.account_id, s.instrument_id, min(least(s.executed_at, s.new_at)),
           max(greatest(s.executed_at, s.new_at)) + interval '1 microsecond', 'execution'
    FROM superseded s
    GROUP BY s.account_id, s.instrument_id;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION trading_tca_superseded() FROM PUBLIC;
CREATE OR REPLACE TRIGGER trading_tca_superseded AFTER INSERT ON trading_execution
    REFERENCING NEW TABLE AS booked
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_superseded();

-- Market data changed on some days of some instruments: the executions whose costs may have
-- read the changed rows, those of the instrument filled from a day before to a day after each
-- day (a markout reads a day ahead, a price a day back), and those of orders created long
-- before their fills whose arrival was read on those days, are queued, per instrument and
-- day, where they have costs already (the others get theirs from the next refresh of their
-- range). Stamped with the change's moment. Owner-run (SECURITY DEFINER triggers call it).
CREATE OR REPLACE FUNCTION trading_tca_queue_days(
    p_instruments bigint[], p_days timestamptz[], p_stamps timestamptz[], p_cause text
) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    WITH days AS MATERIALIZED (
        SELECT d.instrument_id, d.day, d.stamp
        FROM unnest(p_instruments, p_days, p_stamps) AS d (instrument_id, day, stamp)
    ),
    wanted AS MATERIALIZED (
        SELECT d.instrument_id, d.day - interval '1 day' AS first_at,
               d.day + interval '2 days' AS end_at, d.stamp
        FROM days d
        WHERE EXISTS (SELECT FROM trading_executioncost c
                      WHERE c.instrument_id = d.instrument_id
                        AND c.executed_at >= d.day - interval '1 day'
                        AND c.executed_at < d.day + interval '2 days')
        UNION ALL
        -- The fills of orders created long before them (a good-till-cancelled order): their
        -- arrival price was read within a day before the order's creation.
        SELECT c.instrument_id, min(c.executed_at),
               max(c.executed_at) + interval '1 microsecond', max(d.stamp)
        FROM days d
        JOIN trading_executioncost c ON c.instrument_id = d.instrument_id
         AND c.executed_at >= d.day + interval '2 days'
         AND c.arrival_at >= d.day AND c.arrival_at < d.day + interval '2 days'
        GROUP BY c.instrument_id
    ),
    -- A range queued already for the same cause waits for the later moment instead of being
    -- queued again: a feed adding quotes every second queues each day once, not per statement.
    bumped AS (
        UPDATE trading_tcapending q SET stamp = greatest(q.stamp, w.stamp)
        FROM wanted w
        WHERE q.account_id IS NULL AND q.instrument_id = w.instrument_id
          AND q.first_at = w.first_at AND q.end_at = w.end_at AND q.cause = p_cause
        RETURNING q.instrument_id, q.first_at, q.end_at
    )
    INSERT INTO trading_tcapending (instrument_id, first_at, end_at, cause, stamp)
    SELECT w.instrument_id, w.first_at, w.end_at, p_cause, w.stamp
    FROM wanted w
    WHERE NOT EXISTS (SELECT FROM bumped b
                      WHERE b.instrument_id = w.instrument_id AND b.first_at = w.first_at
                        AND b.end_at = w.end_at)
$$;
REVOKE ALL ON FUNCTION trading_tca_queue_days(bigint[], timestamptz[], timestamptz[], text)
    FROM PUBLIC;

-- A revision of ticks or minute bars (the revision tables keep each replaced or deleted row,
-- in the statement that changes it: marketdata/sql/revisions/0011.sql), stamped with the
-- moment the replaced row stopped being known.
CREATE OR REPLACE FUNCTION trading_tca_market_revised() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    PERFORM trading_tca_queue_days(array_agg(d.instrument_id), array_agg(d.day),
                                   array_agg(d.stamp), TG_TABLE_NAME)
    FROM (SELECT k.instrument_id, date_trunc('day', k.ts) AS day, max(k.known_until) AS stamp
          FROM kept k GROUP BY 1, 2) AS d;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION trading_tca_market_revised() FROM PUBLIC;
CREATE OR REPLACE TRIGGER trading_tca_tick_revised AFTER INSERT ON marketdata_tickrevision
    REFERENCING NEW TABLE AS kept
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_market_revised();
CREATE OR REPLACE TRIGGER trading_tca_minutebar_revised
    AFTER INSERT ON marketdata_minutebarrevision
    REFERENCING NEW TABLE AS kept
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_market_revised();

-- Ticks or minute bars added (a late load: a quote that was not there when a cost was
-- computed replaces nothing, so no revision names it), stamped with the transaction's
-- moment, from which they are known. The days are grouped from the statement's rows; where
-- no cost is near them, nothing is queued.
CREATE OR REPLACE FUNCTION trading_tca_market_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    PERFORM trading_tca_queue_days(array_agg(d.instrument_id), array_agg(d.day),
                                   array_fill(now(), ARRAY[count(*)::int]), TG_TABLE_NAME)
    FROM (SELECT a.instrument_id, date_trunc('day', a.ts) AS day
          FROM added a GROUP BY 1, 2) AS d
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION trading_tca_market_added() FROM PUBLIC;
CREATE OR REPLACE TRIGGER trading_tca_tick_added AFTER INSERT ON marketdata_tick
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_market_added();
CREATE OR REPLACE TRIGGER trading_tca_minutebar_added AFTER INSERT ON marketdata_minutebar
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_market_added();

-- A corporate action stated, restated or withdrawn (an action is only inserted or closed:
-- marketdata/sql/actions/0012.sql): the split, stock or cash dividend moves the prices read
-- across its ex moment, those of the executions filled within a day of it. Queued where
-- they have costs, stamped with the change's moment (now(): the action's known_from or
-- known_until).
CREATE OR REPLACE FUNCTION trading_tca_action_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    WITH days AS MATERIALIZED (
        SELECT DISTINCT a.instrument_id, a.ex_date::timestamp AT TIME ZONE 'UTC' AS day
        FROM changed a
        WHERE a.kind IN ('split', 'stock_dividend', 'cash_dividend')
    )
    INSERT INTO trading_tcapending (instrument_id, first_at, end_at, cause, stamp)
    SELECT d.instrument_id, d.day - interval '2 days', d.day + interval '2 days',
           'marketdata_corporateaction', now()
    FROM days d
    WHERE EXISTS (SELECT FROM trading_executioncost c
                  WHERE c.instrument_id = d.instrument_id
                    AND c.executed_at >= d.day - interval '2 days'
                    AND c.executed_at < d.day + interval '2 days')
    UNION ALL
    -- Fills of orders created before the ex moment and filled after it, however long after:
    -- their arrival price is read across it.
    SELECT c.instrument_id, min(c.executed_at), max(c.executed_at) + interval '1 microsecond',
           'marketdata_corporateaction', now()
    FROM days d
    JOIN trading_executioncost c ON c.instrument_id = d.instrument_id
     AND c.executed_at >= d.day + interval '2 days'
     AND c.arrival_at < d.day + interval '1 day'
    GROUP BY c.instrument_id;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION trading_tca_action_changed() FROM PUBLIC;
CREATE OR REPLACE TRIGGER trading_tca_action_stated AFTER INSERT ON marketdata_corporateaction
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_action_changed();
CREATE OR REPLACE TRIGGER trading_tca_action_closed AFTER UPDATE ON marketdata_corporateaction
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION trading_tca_action_changed();

-- Each order created in [p_start, p_end) (of p_account) with its implementation shortfall,
-- in the order's currency and in bps of the decision notional (d x quantity):
--   execution cost   sum over live fills of s * (p_i - d) * |q_i|
--   fees             sum of the live fills' fees
--   opportunity      s * (C - d) * unfilled, C the price prevailing at the close: the end of
--                    the order's UTC day (or the knowledge time if earlier)
-- The decision price d is the order's (decision_source 'order') where it records one, else the
-- arrival price ('arrival'; '' with neither). Across a split, everything is in the shares of
-- the order's basis B, its last fill (or its close if later), in which the books hold its
-- quantity: a fill's quantity times F(B) / F(fill), a price read at u (the arrival, the
-- close, the decision at the arrival) times F(u) / F(B), F the factor of
-- marketdata_action_factors('split') at a time.
DROP FUNCTION IF EXISTS trading_tca_shortfall(timestamptz, timestamptz, bigint, timestamptz);
CREATE FUNCTION trading_tca_shortfall(
    p_start timestamptz, p_end timestamptz, p_account bigint, p_known_at timestamptz
) RETURNS TABLE (
    order_id bigint, account_id bigint, instrument_id bigint, side text, quantity numeric,
    filled numeric, decision_price double precision, arrival_price double precision,
    arrival_source text, average_fill numeric, fees numeric, close_price double precision,
    execution_cost double precision, opportunity_cost double precision,
    shortfall double precision, decision_notional double precision,
    shortfall_bps double precision, decision_source text
)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
#variable_conflict use_column
BEGIN
    PERFORM trading_tca_check('trading_tca_shortfall', p_start, p_end);
    RETURN QUERY
    WITH orders AS (
        SELECT o.id, o.account_id, o.instrument_id, o.side::text AS side, o.quantity,
               o.decision_price::double precision AS recorded,
               CASE o.side WHEN 'buy' THEN 1 ELSE -1 END AS sign,
               least(o.created_at, (SELECT min(e.executed_at) FROM trading_execution e
                                    WHERE e.order_id = o.id)) AS arrival_at,
               least(date_trunc('day', o.created_at) + interval '1 day',
                     coalesce(p_known_at, clock_timestamp())) AS close_at,
               -- The basis of the books' quantities: the order's last fill, or its close.
               greatest(least(date_trunc('day', o.created_at) + interval '1 day',
                              coalesce(p_known_at, clock_timestamp())),
                        (SELECT max(e.executed_at) FROM trading_execution e
                         WHERE e.order_id = o.id)) AS basis_at
        FROM trading_order o
        WHERE o.created_at >= p_start AND o.created_at < p_end
          AND (p_account IS NULL OR o.account_id = p_account)
    ),
    factors AS MATERIALIZED (
        SELECT f.* FROM marketdata_action_factors('split', coalesce(p_known_at,
                                                                   clock_timestamp()), NULL) f
        WHERE f.instrument_id IN (SELECT instrument_id FROM orders)
    ),
    fills AS (
        -- Quantities in the shares of the order's basis across splits; the money paid is the
        -- same in any basis.
        SELECT e.order_id,
               sum(abs(e.quantity)
                   * (marketdata_factor_at(o.basis_at, f.bounds, f.price_factors)
                      / marketdata_factor_at(e.executed_at, f.bounds, f.price_factors))::numeric
               ) AS filled,
               sum(abs(e.quantity) * e.price) AS paid, sum(e.fee) AS fees
        FROM trading_execution e
        JOIN orders o ON o.id = e.order_id
        LEFT JOIN factors f ON f.instrument_id = o.instrument_id
        WHERE e.kind IN ('fill', 'correction')
          AND NOT EXISTS (SELECT FROM trading_execution s WHERE s.supersedes_id = e.id)
        GROUP BY e.order_id
    ),
    valued AS (
        -- Prices read at other times (the arrival, the close) in the order's basis too.
        SELECT o.*, coalesce(fl.filled, 0) AS filled, fl.paid, coalesce(fl.fees, 0) AS fees,
               a.price * marketdata_factor_at(a.ts, f.bounds, f.price_factors)
                   / marketdata_factor_at(o.basis_at, f.bounds, f.price_factors) AS arrival,
               a.source AS arrival_source,
               c.price * marketdata_factor_at(c.ts, f.bounds, f.price_factors)
                   / marketdata_factor_at(o.basis_at, f.bounds, f.price_factors) AS close,
               coalesce(o.recorded * marketdata_factor_at(o.arrival_at, f.bounds,
                                                          f.price_factors),
                        a.price * marketdata_factor_at(a.ts, f.bounds, f.price_factors))
                   / marketdata_factor_at(o.basis_at, f.bounds, f.price_factors) AS decision,
               CASE WHEN o.recorded IS NOT NULL THEN 'order'
                    WHEN a.price IS NOT NULL THEN 'arrival' ELSE '' END AS decision_source
        FROM orders o
        LEFT JOIN fills fl ON fl.order_id = o.id
        LEFT JOIN factors f ON f.instrument_id = o.instrument_id
        LEFT JOIN LATERAL trading_tca_price(o.instrument_id, o.arrival_at,
                                            coalesce(p_known_at, clock_timestamp())) a ON true
        LEFT JOIN LATERAL trading_tca_price(o.instrument_id, o.close_at,
                                            coalesce(p_known_at, clock_timestamp())) c ON true
    ),
    costs AS (
        SELECT v.*,
               v.sign * (coalesce(v.paid, 0)::double precision
                         - v.decision * v.filled::double precision) AS execution_cost,
               CASE WHEN v.quantity > v.filled
                    THEN v.sign * (v.close - v.decision)
                         * (v.quantity - v.filled)::double precision
                    ELSE 0 END AS opportunity_cost,
               v.decision * v.quantity::double precision AS decision_notional
        FROM valued v
    )
    SELECT c.id, c.account_id, c.instrument_id, c.side, c.quantity, c.filled, c.decision,
           c.arrival, coalesce(c.arrival_source, ''),
           CASE WHEN c.filled > 0 THEN round(c.paid / c.filled, 8) END, c.fees, c.close,
           c.execution_cost, c.opportunity_cost,
           c.execution_cost + c.fees::double precision + c.opportunity_cost,
           c.decision_notional,
           (c.execution_cost + c.fees::double precision + c.opportunity_cost)
               / c.decision_notional * 1e4,
           c.decision_source
    FROM costs c
    ORDER BY c.id;
END
$$;

-- The costs of [p_start, p_end) (of p_account) grouped by p_dimension (account, instrument,
-- venue, strategy, agent, side, liquidity, size, or all), one row per group and measure: the
-- executions counted, the group's notional, the measure's notional-weighted mean over the
-- rows that have it (n), and a 95% confidence interval of that mean: mean +- 1.96 * SE with
--   SE = sqrt(n / (n - 1) * sum(w_i^2 * (x_i - mean)^2)) / sum(w_i)
-- (the ratio estimator's standard error with weights w_i = notional; NULL below two rows).
-- A blank venue groups as '(unknown)', a blank strategy and no agent as '(none)'.
-- trading_tca_summary_of takes a set of accounts (NULL: every account), so that a user who
-- sees several accounts reads their costs aggregated together: the means and intervals of
-- several accounts cannot be put together from each account's.
CREATE OR REPLACE FUNCTION trading_tca_summary_of(
    p_dimension text, p_start timestamptz, p_end timestamptz, p_accounts bigint[]
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
       OR p_dimension NOT IN ('account', 'instrument', 'venue', 'strategy', 'agent', 'side',
                              'liquidity', 'size', 'all') THEN
        RAISE EXCEPTION 'trading_tca_summary: dimension must be one of account, instrument,'
            ' venue, strategy, agent, side, liquidity, size, all, not %',
            coalesce(p_dimension, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH scoped AS (
        SELECT CASE p_dimension
                   WHEN 'account' THEN a.name::text
                   WHEN 'instrument' THEN i.symbol::text
                   WHEN 'venue' THEN coalesce(nullif(c.venue, ''), '(unknown)')
                   WHEN 'strategy' THEN coalesce(nullif(c.strategy, ''), '(none)')
                   WHEN 'agent' THEN coalesce(g.name::text, '(none)')
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
        LEFT JOIN signals_agent g ON g.id = c.agent_id
        WHERE c.executed_at >= p_start AND c.executed_at < p_end
          AND (p_accounts IS NULL OR c.account_id = ANY (p_accounts))
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

-- The summary of one account (NULL: every account), as 0015 named it.
CREATE OR REPLACE FUNCTION trading_tca_summary(
    p_dimension text, p_start timestamptz, p_end timestamptz, p_account bigint
) RETURNS TABLE (
    grp text, measure text, executions bigint, notional numeric, n bigint,
    mean double precision, ci_low double precision, ci_high double precision
)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT * FROM trading_tca_summary_of(
        p_dimension, p_start, p_end,
        CASE WHEN p_account IS NOT NULL THEN ARRAY[p_account] END)
$$;

CREATE INDEX "trading_order_agent_id_6598edf7" ON "trading_order" ("agent_id");
COMMIT;
