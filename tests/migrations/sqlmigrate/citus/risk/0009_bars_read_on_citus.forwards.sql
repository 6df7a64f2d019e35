BEGIN;
--
-- On Citus, risk_holdings(bigint, timestamptz, timestamptz) defined for Citus
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
INSERT INTO qvp_citus_set_aside (table_name, object_name, definition) SELECT '(functions)', f::text, pg_get_functiondef(f) FROM (SELECT 'risk_holdings(bigint, timestamptz, timestamptz)'::regprocedure AS f) AS kept ON CONFLICT DO NOTHING;
-- Version 0009 of risk_holdings, on Citus only (risk 0009): version 0006's, the same answers,
-- in PL/pgSQL. Elsewhere 0006's text stays.
--
-- 0006 writes it in SQL, which PostgreSQL inlines: a lateral lookup of each holding's latest
-- bar from the books' holdings. Citus refuses both: a SQL function with parameters over its
-- distributed tables, and a lateral lookup into them from a coordinator's table. In PL/pgSQL
-- each statement is planned by Citus on its own, with the parameters' values: the holdings
-- are read from the books first, then their latest bars looked up from the instruments' keys,
-- distributed beside the bars (as marketdata.prices' on Citus), each on the shard that holds
-- the instrument. As known at a time, the tables' <table>_known_at body is written out
-- (Citus plans no SQL function over a distributed table), $1 the moment.

CREATE OR REPLACE FUNCTION risk_holdings(
    p_account bigint, p_as_of timestamptz, p_known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (instrument_id bigint, quantity float8, price float8, value float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    held_ids bigint[];
    held_quantities numeric[];
    minute_source text := CASE WHEN p_known_at IS NULL THEN 'marketdata_minutebar'
        ELSE '(SELECT * FROM marketdata_minutebar_history WHERE known_from <= $1'
             ' AND (known_until IS NULL OR known_until > $1))' END;
    daily_source text := CASE WHEN p_known_at IS NULL THEN 'marketdata_dailybar'
        ELSE '(SELECT * FROM marketdata_dailybar_history WHERE known_from <= $1'
             ' AND (known_until IS NULL OR known_until > $1))' END;
BEGIN
    -- The books' holdings (coordinator tables), then their prices looked up on the shards.
    SELECT coalesce(array_agg(t.instrument_id), '{}'), coalesce(array_agg(t.quantity), '{}')
    INTO held_ids, held_quantities
    FROM trading_held_at(p_account, p_as_of, p_known_at) t;
    RETURN QUERY EXECUTE format($q$
    WITH latest AS MATERIALIZED (
        SELECT k.id AS instrument_id, l.ts, l.close
        FROM marketdata_instrument_key k
        CROSS JOIN LATERAL (
            SELECT ts, close FROM (
                (SELECT ts, close FROM %1$s m
                 WHERE m.instrument_id = k.id AND m.ts <= $2 ORDER BY m.ts DESC LIMIT 1)
                UNION ALL
                (SELECT ts, close FROM %2$s d
                 WHERE d.instrument_id = k.id AND d.ts <= $2 ORDER BY d.ts DESC LIMIT 1)
            ) AS candidates
            ORDER BY ts DESC LIMIT 1
        ) AS l
        WHERE k.id = ANY($3)
    )
    SELECT h.instrument_id, h.quantity::float8, priced.price,
           (h.quantity * i.multiplier)::float8 * priced.price
    FROM unnest($3, $4) AS h(instrument_id, quantity)
    JOIN marketdata_instrument i ON i.id = h.instrument_id
    JOIN latest ON latest.instrument_id = h.instrument_id
    -- A split since the last bar: the shares held are priced in its shares.
    CROSS JOIN LATERAL (
        SELECT latest.close::float8
               * marketdata_shares_factor(h.instrument_id, latest.ts, $2, $1) AS price
    ) AS priced
    ORDER BY h.instrument_id
    $q$, minute_source,
         daily_source)
    USING p_known_at, p_as_of, held_ids, held_quantities;
END
$$;

--
-- On Citus, risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text) defined for Citus
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
INSERT INTO qvp_citus_set_aside (table_name, object_name, definition) SELECT '(functions)', f::text, pg_get_functiondef(f) FROM (SELECT 'risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text)'::regprocedure AS f) AS kept ON CONFLICT DO NOTHING;
-- Version 0009 of risk_daily_returns, on Citus only (risk 0009): version 0006's, the same
-- answers, in PL/pgSQL. Elsewhere 0006's text stays.
--
-- 0006 writes it in SQL, which PostgreSQL inlines: a lateral lookup of each instrument's bars
-- from a list of ids, adjusted by marketdata_dailybar_adjusted. Citus refuses all three: a SQL
-- function with parameters over its distributed tables, a lateral lookup into them from a
-- list, and the adjusted read (marketdata/adjusting.py). In PL/pgSQL each statement is planned
-- by Citus on its own, with the parameters' values: the factors of the corporate actions are
-- computed first, in a statement of their own; the bars are looked up from the instruments'
-- keys, distributed beside them (as marketdata.prices' on Citus), each on the shard that holds
-- the instrument, as traded; then adjusted on the coordinator. As known at a time, the
-- table's <table>_known_at body is written out, $1 the moment.

CREATE OR REPLACE FUNCTION risk_daily_returns(
    p_instruments bigint[], p_as_of timestamptz, p_lookback integer,
    p_known_at timestamptz DEFAULT NULL, p_adjustment text DEFAULT 'total_return'
) RETURNS TABLE (day date, instrument_id bigint, ret float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    factor_ids bigint[];
    factor_bounds text[];
    factors text[];
    daily_source text := CASE WHEN p_known_at IS NULL THEN 'marketdata_dailybar'
        ELSE '(SELECT * FROM marketdata_dailybar_history WHERE known_from <= $1'
             ' AND (known_until IS NULL OR known_until > $1))' END;
BEGIN
    IF p_lookback IS NULL THEN  -- 0006's answer: no bar before the latest, no return
        RETURN;
    END IF;
    -- The factors of the instruments' actions, known at p_known_at (as 0006's adjusted read).
    SELECT coalesce(array_agg(a.instrument_id), '{}'), coalesce(array_agg(a.bounds::text), '{}'),
           coalesce(array_agg(a.price_factors::text), '{}')
    INTO factor_ids, factor_bounds, factors
    FROM marketdata_action_factors(risk_adjustment_checked(p_adjustment), p_known_at, NULL) a
    WHERE a.instrument_id = ANY(p_instruments);
    RETURN QUERY EXECUTE format($q$
    WITH raw AS MATERIALIZED (
        -- Each instrument's last p_lookback + 1 bars, as traded, on its shard.
        SELECT k.id AS instrument_id, b.ts, b.close
        FROM marketdata_instrument_key k
        CROSS JOIN LATERAL (
            SELECT d.ts, d.close FROM %s d
            WHERE d.instrument_id = k.id AND d.ts <= $2
            ORDER BY d.ts DESC LIMIT $3 + 1
        ) AS b
        WHERE k.id = ANY($4)
    ), bars AS (
        -- Adjusted here, on the coordinator, from the factors given (text read back in the
        -- session that wrote it),
        -- once per time an instrument is listed, as 0006 reads them.
        SELECT r.instrument_id, r.ts,
               r.close * marketdata_factor_at(r.ts, f.bounds::timestamptz[],
                                              f.factors::double precision[]) AS close
        FROM unnest($4) AS ids(id)
        JOIN raw r ON r.instrument_id = ids.id
        LEFT JOIN unnest($5, $6, $7) AS f(instrument_id, bounds, factors)
          ON f.instrument_id = r.instrument_id
    ), returns AS (
        SELECT (ts AT TIME ZONE 'UTC')::date AS day, bars.instrument_id,
               (close / previous - 1)::float8 AS ret
        FROM (
            SELECT bars.*, lag(close) OVER (PARTITION BY bars.instrument_id ORDER BY ts)
                   AS previous
            FROM bars
        ) AS bars
        WHERE previous IS NOT NULL AND previous > 0
    ), common AS (
        SELECT returns.day FROM returns GROUP BY returns.day
        HAVING count(*) = cardinality(ARRAY(SELECT DISTINCT unnest($4)))
        ORDER BY returns.day DESC LIMIT $3
    )
    SELECT r.day, r.instrument_id, r.ret FROM returns r JOIN common USING (day)
    ORDER BY r.day, r.instrument_id
    $q$, daily_source)
    USING p_known_at, p_as_of, p_lookback, p_instruments, factor_ids, factor_bounds, factors;
END
$$;

--
-- On Citus, risk_market_anomalies(bigint, timestamptz, timestamptz, double precision) defined for Citus
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
INSERT INTO qvp_citus_set_aside (table_name, object_name, definition) SELECT '(functions)', f::text, pg_get_functiondef(f) FROM (SELECT 'risk_market_anomalies(bigint, timestamptz, timestamptz, double precision)'::regprocedure AS f) AS kept ON CONFLICT DO NOTHING;
-- Version 0009 of risk_market_anomalies, on Citus only (risk 0009): version 0008's, the same
-- answers, its bars read in a CTE of their own, MATERIALIZED. Elsewhere 0008's text stays,
-- where PostgreSQL materialises that CTE all the same (it is read three times).
--
-- Citus inlines a CTE it can, and 0008's bars are read again in the gaps' NOT EXISTS beside
-- the coordinator's trading sessions: inlined there, a join of the distributed bars with a
-- local table, which Citus refuses. Materialised, the bars are read on their shard first, and
-- the rest runs on the coordinator over what was read.

CREATE OR REPLACE FUNCTION risk_market_anomalies(
    p_instrument bigint, p_start timestamptz, p_end timestamptz,
    p_threshold double precision DEFAULT 5
) RETURNS TABLE (ts timestamptz, kind text, value double precision, score double precision,
                 until timestamptz, detail text)
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_exchange text;
    v_class text;
    v_calendar bigint;
    v_bars boolean;
    v_why text;
BEGIN
    PERFORM risk_require_market_data('risk_market_anomalies');
    IF p_start IS NULL OR p_end IS NULL OR NOT p_end > p_start THEN
        RAISE EXCEPTION 'the window [%, %) is empty: its end must be after its start',
            p_start, p_end USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_threshold IS NULL OR NOT p_threshold > 0 THEN
        RAISE EXCEPTION 'threshold must be positive, not %', p_threshold
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.exchange, i.asset_class INTO v_exchange, v_class
    FROM marketdata_instrument i WHERE i.id = p_instrument;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no instrument %', p_instrument USING ERRCODE = 'no_data_found';
    END IF;
    -- The exchange's own calendar where one is loaded; else crypto trades around the clock
    -- and FX around the week (risk/anomalies.py, CALENDAR_BY_ASSET_CLASS).
    SELECT c.id INTO v_calendar FROM risk_tradingcalendar c
    WHERE c.name = coalesce(
        (SELECT e.name FROM risk_tradingcalendar e WHERE e.name = v_exchange),
        CASE v_class WHEN 'crypto' THEN '24/7' WHEN 'fx' THEN '24/5' END);
    -- A daily-only instrument has no minutes to miss: its whole window is no gap.
    v_bars := EXISTS (SELECT 1 FROM marketdata_minutebar b WHERE b.instrument_id = p_instrument);
    IF NOT v_bars THEN
        v_calendar := NULL;
    END IF;
    v_why := CASE
        WHEN NOT v_bars THEN 'no minute bars at all: gaps not measured'
        WHEN v_calendar IS NULL THEN format(
            'no trading sessions loaded for exchange %s (%s): gaps not measured; manage.py'
            ' detect_anomalies loads them from the exchange''s calendar, where it has one',
            coalesce(nullif(v_exchange, ''), 'none'), v_class)
        ELSE 'no trading sessions loaded for this range: gaps not measured; manage.py'
            ' detect_anomalies loads them from the exchange''s calendar'
    END;
    RETURN QUERY
    WITH bars AS MATERIALIZED (
        SELECT b.ts, b.close, b.volume, lag(b.ts) OVER w AS prev_ts, lag(b.close) OVER w AS prev
        FROM marketdata_minutebar b
        WHERE b.instrument_id = p_instrument AND b.ts >= p_start AND b.ts < p_end
        WINDOW w AS (ORDER BY b.ts)
    ),
    series AS (  -- value: what is reported; x: what is scored
        SELECT 'return'::text AS kind, b.ts, ln(b.close / b.prev) AS value,
               ln(b.close / b.prev) AS x
        FROM bars b WHERE b.prev_ts = b.ts - interval '1 minute'
        UNION ALL
        SELECT 'volume', b.ts, b.volume, ln(1 + b.volume) FROM bars b WHERE b.volume IS NOT NULL
    ),
    centre AS (
        SELECT s.kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY s.x) AS median
        FROM series s GROUP BY s.kind HAVING count(*) >= 3
    ),
    spread AS (
        SELECT s.kind, c.median,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(s.x - c.median)) AS mad
        FROM series s JOIN centre c ON c.kind = s.kind GROUP BY s.kind, c.median
    ),
    outliers AS (
        SELECT s.ts, s.kind, s.value, 0.6745 * (s.x - d.median) / d.mad AS score
        FROM series s JOIN spread d ON d.kind = s.kind
        WHERE d.mad > 0 AND abs(0.6745 * (s.x - d.median) / d.mad) > p_threshold
    ),
    covered AS (  -- the part of the window whose sessions are loaded
        SELECT greatest(p_start, c.sessions_from) AS lo, least(p_end, c.sessions_to) AS hi
        FROM risk_tradingcalendar c WHERE c.id = v_calendar
    ),
    expected AS (  -- every minute the market was open there, from the first whole minute
        SELECT DISTINCT m.m
        FROM covered v
        JOIN risk_tradingperiod p
          ON p.calendar_id = v_calendar AND p.opens_at < v.hi AND p.closes_at > v.lo
        CROSS JOIN LATERAL generate_series(
            date_trunc('minute', greatest(p.opens_at, v.lo) + interval '1 minute'
                                 - interval '1 microsecond'),
            least(p.closes_at, v.hi) - interval '1 minute', interval '1 minute') AS m(m)
    ),
    missing AS (  -- consecutive missing minutes share a run
        SELECT e.m, e.m - row_number() OVER (ORDER BY e.m) * interval '1 minute' AS run
        FROM expected e WHERE NOT EXISTS (SELECT 1 FROM bars b WHERE b.ts = e.m)
    ),
    unmeasured AS (
        SELECT lower(r) AS lo, upper(r) AS hi
        FROM unnest(tstzmultirange(tstzrange(p_start, p_end))
                    - coalesce((SELECT tstzmultirange(tstzrange(v.lo, v.hi)) FROM covered v
                                WHERE v.hi > v.lo), '{}'::tstzmultirange)) AS r
    )
    SELECT o.ts, o.kind, o.value, o.score, NULL::timestamptz, NULL::text FROM outliers o
    UNION ALL
    SELECT min(g.m), 'gap', count(*)::double precision, NULL, max(g.m), NULL
    FROM missing g GROUP BY g.run
    UNION ALL
    SELECT u.lo, 'unmeasured', extract(epoch FROM u.hi - u.lo) / 60, NULL, u.hi, v_why
    FROM unmeasured u
    ORDER BY 1, 2;
END
$$;

COMMIT;
