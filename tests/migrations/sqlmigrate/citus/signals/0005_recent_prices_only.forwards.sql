BEGIN;
--
-- Raw SQL operation
--
-- The price of an instrument known at a time, and the performance of an agent's signals
-- measured against the returns that followed them over their horizon.

-- The newest close known at p_at: a minute bar's close is known when its minute is over, a
-- daily bar's (stamped at midnight) when its day is. Counting a bar's close from its start
-- would let a signal see the price it is about to predict. A close more than 10 days old is
-- no price (a halted or delisted instrument); the bound also lets the scan skip every
-- partition or chunk but the last few.
CREATE OR REPLACE FUNCTION signals_price_at(p_instrument bigint, p_at timestamptz)
RETURNS TABLE (known_at timestamptz, price double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT known_at, price FROM (
        (SELECT ts + interval '1 minute' AS known_at, close AS price
         FROM marketdata_minutebar
         WHERE instrument_id = p_instrument AND ts <= p_at - interval '1 minute'
           AND ts > p_at - interval '10 days'
         ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts + interval '1 day', close
         FROM marketdata_dailybar
         WHERE instrument_id = p_instrument AND ts <= p_at - interval '1 day'
           AND ts > p_at - interval '11 days'
         ORDER BY ts DESC LIMIT 1)
    ) AS candidates
    ORDER BY known_at DESC LIMIT 1
$$;

-- Each signal of the agent from the last p_days days before p_as_of whose horizon is over by
-- then, with the return from the price known at the signal to the price known at the end of
-- its horizon (none when no newer price arrived: a market closed all along). Earned is that
-- return taken in the signal's direction.
CREATE OR REPLACE FUNCTION signals_signal_outcomes(
    p_agent_name text, p_days integer, p_as_of timestamptz DEFAULT now()
)
RETURNS TABLE (
    signal_id bigint, instrument_id bigint, ts timestamptz, direction smallint,
    strength double precision, entry_price double precision, exit_price double precision,
    realised double precision, earned double precision
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_days IS NULL OR p_days < 1 THEN
        RAISE EXCEPTION 'days must be a positive number of days, not %', p_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM signals_agent WHERE name = p_agent_name) THEN
        RAISE EXCEPTION 'no agent named %', p_agent_name USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    SELECT s.id, s.instrument_id, s.ts, s.direction, s.strength, entry.price, exit.price,
           exit.price / entry.price - 1, s.direction * (exit.price / entry.price - 1)
    FROM signals_signal s
    JOIN signals_agent a ON a.id = s.agent_id AND a.name = p_agent_name
    CROSS JOIN LATERAL signals_price_at(s.instrument_id, s.ts) AS entry
    CROSS JOIN LATERAL signals_price_at(s.instrument_id, s.ts + s.horizon) AS exit
    WHERE s.ts >= p_as_of - make_interval(days => p_days)
      AND s.ts < p_as_of
      AND s.ts + s.horizon <= p_as_of
      AND exit.known_at > entry.known_at;
END
$$;

-- The design documents' calculate_signal_performance('momentum_agent', 30): over the signals
-- above, how many, the share whose direction was right (direction 0 says nothing, so it is
-- left out), the information coefficient (Spearman's rank correlation of strength and the
-- realised return, ties given their average rank), the average earned return, and the
-- earned returns compounded in time order (-1 once one lost everything).
CREATE OR REPLACE FUNCTION calculate_signal_performance(
    agent_name text, days integer, as_of timestamptz DEFAULT now()
)
RETURNS TABLE (
    agent text, window_days integer, window_start timestamptz, window_end timestamptz,
    signal_count bigint, hit_rate double precision, information_coefficient double precision,
    average_return double precision, cumulative_return double precision
)
LANGUAGE sql STABLE AS $$
    WITH outcomes AS (
        SELECT * FROM signals_signal_outcomes(agent_name, days, as_of)
    ),
    ranked AS (
        SELECT o.*,
               rank() OVER (ORDER BY o.strength)
                   + (count(*) OVER (PARTITION BY o.strength) - 1) / 2.0 AS strength_rank,
               rank() OVER (ORDER BY o.realised)
                   + (count(*) OVER (PARTITION BY o.realised) - 1) / 2.0 AS return_rank
        FROM outcomes o
    )
    SELECT agent_name, days, as_of - make_interval(days => days), as_of,
           count(*),
           avg(CASE WHEN r.earned > 0 THEN 1.0 ELSE 0.0 END) FILTER (WHERE r.direction <> 0),
           -- corr() of ranks can stray past +-1 by a rounding error.
           least(1.0, greatest(-1.0, corr(r.strength_rank, r.return_rank))),
           avg(r.earned),
           CASE WHEN count(*) = 0 THEN NULL
                WHEN bool_or(r.earned <= -1) THEN -1.0
                ELSE exp(sum(ln(1 + r.earned))) - 1 END
    FROM ranked r
$$;

COMMIT;
