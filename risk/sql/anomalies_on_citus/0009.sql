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
