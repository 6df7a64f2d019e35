BEGIN;
--
-- On Citus, marketdata_action_factors(text, timestamptz, timestamptz) defined for Citus
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
INSERT INTO qvp_citus_set_aside (table_name, object_name, definition) SELECT '(functions)', f::text, pg_get_functiondef(f) FROM (SELECT 'marketdata_action_factors(text, timestamptz, timestamptz)'::regprocedure AS f) AS kept ON CONFLICT DO NOTHING;
-- Version 0020 of the factors of corporate actions, on Citus only (marketdata 0020): version
-- 0013's marketdata_action_factors(adjustment, known_at, from), its dividends' closes looked up
-- by marketdata_close_before, a call per dividend. 0013 writes that lookup out, a lateral
-- subquery into the bars, which PostgreSQL plans with the rest; Citus refuses a lateral
-- lookup into a distributed table from the coordinator's actions, and with it the whole
-- function. The call's query goes to the one shard that holds the instrument's bars. Elsewhere
-- 0013's text stays.

CREATE OR REPLACE FUNCTION marketdata_action_factors(
    p_adjustment text, p_known_at timestamptz, p_from timestamptz
) RETURNS TABLE (instrument_id bigint, bounds timestamptz[], price_factors double precision[],
                 volume_factors double precision[])
LANGUAGE sql STABLE AS $$
    WITH actions AS (
        -- The actions the adjustment applies, each with its ex moment: the time zone by
        -- marketdata_exchange_time_zone's rule, written out as joins so that PostgreSQL
        -- hash-joins the instruments, listings and exchanges once for all the actions (called
        -- per action, LATERAL, it nearly doubled reading every instrument's year).
        SELECT a.instrument_id, a.ex_date, a.kind, a.ratio, a.amount, a.cost_fraction,
               marketdata_ex_moment_in(a.ex_date, coalesce(z.time_zone, y.time_zone)) AS ex_at
        FROM marketdata_actions_known_at(p_known_at) a
        JOIN marketdata_instrument i ON i.id = a.instrument_id
        LEFT JOIN marketdata_listing l
          ON l.instrument_id = a.instrument_id AND l.known_until IS NULL AND l.mic <> ''
         AND daterange(l.valid_from, l.valid_until) @> a.ex_date
        LEFT JOIN marketdata_exchange z ON z.mic = l.mic
        LEFT JOIN marketdata_exchange y ON y.mic = i.exchange
        WHERE (a.kind IN ('split', 'stock_dividend')
               AND p_adjustment IN ('split', 'total_return')
               OR a.kind IN ('cash_dividend', 'spin_off') AND p_adjustment = 'total_return')
          -- A day's margin on the date: the ex moment, never later than 00:00 UTC of the
          -- ex-date, decides below.
          AND (p_from IS NULL OR a.ex_date > (p_from AT TIME ZONE 'UTC')::date - 1)
    ),
    steps AS (
        -- Each ex moment's factors, as logarithms (several actions on a day multiply).
        SELECT a.instrument_id, a.ex_at AS bound,
               sum(CASE a.kind
                       WHEN 'split' THEN -ln(a.ratio::double precision)
                       WHEN 'stock_dividend' THEN -ln(1 + a.ratio::double precision)
                       WHEN 'cash_dividend' THEN
                           CASE WHEN c.close > a.amount
                                THEN ln(1 - a.amount::double precision / c.close) END
                       WHEN 'spin_off' THEN ln(1 - a.cost_fraction::double precision)
                   END) AS log_price,
               sum(CASE a.kind
                       WHEN 'split' THEN ln(a.ratio::double precision)
                       WHEN 'stock_dividend' THEN ln(1 + a.ratio::double precision)
                   END) AS log_volume
        FROM actions a
        -- A dividend's close before its ex moment, by marketdata_close_before: a call per
        -- dividend, whose query Citus plans on the instrument's shard.
        CROSS JOIN LATERAL (
            SELECT CASE WHEN a.kind = 'cash_dividend'
                        THEN marketdata_close_before(a.instrument_id, a.ex_at, p_known_at)
                   END AS close
        ) AS c
        -- In effect by then: an action announced for a later ex-date leaves the latest price
        -- as traded until its ex moment.
        WHERE a.ex_at <= coalesce(p_known_at, now())
          AND (p_from IS NULL OR a.ex_at > p_from)
        GROUP BY a.instrument_id, a.ex_at
    ),
    later AS (
        -- The factor of a span: every ex moment from its end on (sums of logarithms, so that a
        -- window does it; NULL, a dividend with no close before it, counts as 1).
        SELECT s.instrument_id, s.bound,
               exp(coalesce(sum(s.log_price) OVER w, 0)) AS price,
               exp(coalesce(sum(s.log_volume) OVER w, 0)) AS volume
        FROM steps s
        WINDOW w AS (PARTITION BY s.instrument_id ORDER BY s.bound DESC)
    )
    SELECT l.instrument_id, array_agg(l.bound ORDER BY l.bound),
           array_agg(l.price ORDER BY l.bound) || 1::double precision,
           array_agg(l.volume ORDER BY l.bound) || 1::double precision
    FROM later l
    GROUP BY l.instrument_id
$$;

COMMIT;
