BEGIN;
--
-- Alter field cumulative_return on signalperformance
--
-- (no-op)
--
-- Raw SQL operation
--
-- Signal performance (signals 0008): the functions of 0007, with calculate_signal_performance's
-- cumulative_return compounding non-overlapping holding periods. Until 0008 it compounded every
-- signal's return in time order, across instruments and over horizons that overlap: with daily
-- signals of 5-day horizons on the demo's six instruments, 30 days compounded over a hundred
-- 5-day returns, as if the whole capital were in each of them in turn (+291% in 30 days).
-- signals_signal_outcomes now also returns each signal's horizon, which the holding periods need
-- (a changed result type: it is dropped and created again).

DROP FUNCTION IF EXISTS signals_signal_outcomes(text, integer, timestamptz, timestamptz);

-- The newest close available at p_at: a minute bar's close is available when its minute is
-- over, a daily bar's (stamped at midnight) when its day is. Counting a bar's close from its start
-- would let a signal see the price it is about to predict. A close more than 10 days old is
-- no price (a halted or delisted instrument); the bound also lets the scan skip every
-- partition or chunk but the last few.
-- The bars are read as known at p_known_at ('infinity' reads the present: every current row,
-- no revision); the read functions are plain SQL, inlined here, so the (instrument, ts) index
-- still serves.
CREATE OR REPLACE FUNCTION signals_price_at(
    p_instrument bigint, p_at timestamptz, p_known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (available_at timestamptz, price double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT available_at, price FROM (
        (SELECT ts + interval '1 minute' AS available_at, close AS price
         FROM marketdata_minutebar_known_at(coalesce(p_known_at, 'infinity'))
         WHERE instrument_id = p_instrument AND ts <= p_at - interval '1 minute'
           AND ts > p_at - interval '10 days'
         ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts + interval '1 day', close
         FROM marketdata_dailybar_known_at(coalesce(p_known_at, 'infinity'))
         WHERE instrument_id = p_instrument AND ts <= p_at - interval '1 day'
           AND ts > p_at - interval '11 days'
         ORDER BY ts DESC LIMIT 1)
    ) AS candidates
    ORDER BY available_at DESC LIMIT 1
$$;

-- Each signal of the agent from the last p_days days before p_as_of whose horizon is over by
-- then, with the return from the price available at the signal to the price available at the
-- end of its horizon (none when no newer price arrived: a market closed all along). Earned is
-- that return taken in the signal's direction.
CREATE OR REPLACE FUNCTION signals_signal_outcomes(
    p_agent_name text, p_days integer, p_as_of timestamptz DEFAULT now(),
    p_known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    signal_id bigint, instrument_id bigint, ts timestamptz, direction smallint,
    strength double precision, entry_price double precision, exit_price double precision,
    realised double precision, earned double precision, horizon interval
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
           exit.price / entry.price - 1, s.direction * (exit.price / entry.price - 1), s.horizon
    FROM signals_signal s
    JOIN signals_agent a ON a.id = s.agent_id AND a.name = p_agent_name
    CROSS JOIN LATERAL signals_price_at(s.instrument_id, s.ts, p_known_at) AS entry
    CROSS JOIN LATERAL signals_price_at(s.instrument_id, s.ts + s.horizon, p_known_at) AS exit
    WHERE s.ts >= p_as_of - make_interval(days => p_days)
      AND s.ts < p_as_of
      AND s.ts + s.horizon <= p_as_of
      AND exit.available_at > entry.available_at;
END
$$;

-- The design documents' calculate_signal_performance('momentum_agent', 30): over the signals
-- above, how many, the share whose direction was right (direction 0 says nothing, so it is
-- left out), the information coefficient (Spearman's rank correlation of strength and the
-- realised return, ties given their average rank), the average earned return, and the
-- cumulative return. With known_at, the market data as the system knew it then.
--
-- cumulative_return is the return of a book that follows the agent's signals one holding
-- period at a time, without overlap:
-- * its capital is split equally among the instruments that have a signal above (an outcome);
-- * each instrument's share takes the instrument's first signal and holds it over its horizon
--   (earning the signal's earned return; direction 0 holds no position and earns 0), then
--   takes the instrument's first signal given at or after that horizon's end, and so on: the
--   signals given while one is held are passed over, since their returns overlap the one held;
-- * each share compounds the earned returns of the signals it took (-1 once one lost it all:
--   a short whose price more than doubled), and the book's return is the average of the
--   shares' (they are never rebalanced against each other).
-- One instrument's signals, each given when the one before ends, compound one by one. Signals
-- whose horizon is not over by as_of, or without a price after theirs, have no outcome and
-- take no part. (Until signals 0008 every outcome was compounded in time order, overlaps and
-- all.)
CREATE OR REPLACE FUNCTION calculate_signal_performance(
    agent_name text, days integer, as_of timestamptz DEFAULT now(),
    known_at timestamptz DEFAULT NULL
)
RETURNS TABLE (
    agent text, window_days integer, window_start timestamptz, window_end timestamptz,
    signal_count bigint, hit_rate double precision, information_coefficient double precision,
    average_return double precision, cumulative_return double precision
)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE outcomes AS (
        SELECT * FROM signals_signal_outcomes(agent_name, days, as_of, known_at)
    ),
    ranked AS (
        SELECT o.*,
               rank() OVER (ORDER BY o.strength)
                   + (count(*) OVER (PARTITION BY o.strength) - 1) / 2.0 AS strength_rank,
               rank() OVER (ORDER BY o.realised)
                   + (count(*) OVER (PARTITION BY o.realised) - 1) / 2.0 AS return_rank
        FROM outcomes o
    ),
    -- Each instrument's outcomes numbered in time order (an agent gives an instrument one
    -- signal at a time: the signals' key), with the moment each one's holding ends.
    numbered AS (
        SELECT o.instrument_id, o.ts, o.ts + o.horizon AS ends, o.earned,
               row_number() OVER (PARTITION BY o.instrument_id ORDER BY o.ts) AS n
        FROM outcomes o
    ),
    -- The signals and the ends of their holdings in one time order, an end before a signal
    -- given at the same moment: at each end, the running count of signals is how many were
    -- given before it, so the first one at or after it is the next. One sort, no search per
    -- signal.
    moments AS (
        SELECT instrument_id, ends AS at, 0 AS is_signal, n, earned FROM numbered
        UNION ALL
        SELECT instrument_id, ts, 1, n, NULL FROM numbered
    ),
    held AS (
        SELECT m.instrument_id, m.n, m.earned, m.is_signal,
               sum(m.is_signal) OVER (PARTITION BY m.instrument_id ORDER BY m.at, m.is_signal
                                      ROWS UNBOUNDED PRECEDING) + 1 AS next_n
        FROM moments m
    ),
    -- Each instrument's share, from its first signal along the signals it takes.
    taken AS (
        SELECT h.instrument_id, h.earned, h.next_n FROM held h
        WHERE h.is_signal = 0 AND h.n = 1
        UNION ALL
        SELECT h.instrument_id, h.earned, h.next_n
        FROM taken t JOIN held h ON h.instrument_id = t.instrument_id AND h.n = t.next_n
                                AND h.is_signal = 0
    ),
    -- A CASE does not keep its aggregates from being computed: the FILTER keeps ln() from a
    -- total loss (0007 failed on a short that lost more than its capital, "cannot take
    -- logarithm of a negative number").
    shares AS (
        SELECT CASE WHEN bool_or(t.earned <= -1) THEN -1.0
                    ELSE exp(sum(ln(1 + t.earned)) FILTER (WHERE t.earned > -1)) - 1
               END AS compounded
        FROM taken t GROUP BY t.instrument_id
    )
    SELECT agent_name, days, as_of - make_interval(days => days), as_of,
           count(*),
           avg(CASE WHEN r.earned > 0 THEN 1.0 ELSE 0.0 END) FILTER (WHERE r.direction <> 0),
           -- corr() of ranks can stray past +-1 by a rounding error.
           least(1.0, greatest(-1.0, corr(r.strength_rank, r.return_rank))),
           avg(r.earned),
           (SELECT avg(s.compounded) FROM shares s)
    FROM ranked r
$$;

COMMIT;
