-- Version 0010 (signals 0010), on Citus alone: signals_signal_outcomes of signals/sql/performance/
-- 0008.sql, the same answers, with the agent's signals read first. Once the signals are
-- distributed, Citus sends 0008's lateral calls of signals_price_at from the signals' rows to
-- the shards, which refuse the bars' reads nested in them; here the prices are looked up from
-- the signals' values on the coordinator, each call on its instrument's shard.
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
DECLARE
    agent bigint;
    ids bigint[];
    instruments bigint[];
    times timestamptz[];
    directions smallint[];
    strengths double precision[];
    horizons interval[];
BEGIN
    IF p_days IS NULL OR p_days < 1 THEN
        RAISE EXCEPTION 'days must be a positive number of days, not %', p_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.id INTO agent FROM signals_agent a WHERE a.name = p_agent_name;
    IF agent IS NULL THEN
        RAISE EXCEPTION 'no agent named %', p_agent_name USING ERRCODE = 'no_data_found';
    END IF;
    SELECT array_agg(s.id), array_agg(s.instrument_id), array_agg(s.ts), array_agg(s.direction),
           array_agg(s.strength), array_agg(s.horizon)
    INTO ids, instruments, times, directions, strengths, horizons
    FROM signals_signal s
    WHERE s.agent_id = agent
      AND s.ts >= p_as_of - make_interval(days => p_days)
      AND s.ts < p_as_of
      AND s.ts + s.horizon <= p_as_of;
    RETURN QUERY
    SELECT s.id, s.instrument_id, s.ts, s.direction, s.strength, entry.price, exit.price,
           exit.price / entry.price - 1, s.direction * (exit.price / entry.price - 1), s.horizon
    FROM unnest(ids, instruments, times, directions, strengths, horizons)
         AS s (id, instrument_id, ts, direction, strength, horizon)
    CROSS JOIN LATERAL signals_price_at(s.instrument_id, s.ts, p_known_at) AS entry
    CROSS JOIN LATERAL signals_price_at(s.instrument_id, s.ts + s.horizon, p_known_at) AS exit
    WHERE exit.available_at > entry.available_at;
END
$$;
