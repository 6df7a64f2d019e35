-- Version 0014 of the books (0013): a position replays its executions and its corporate-action
-- entries in the order of time, not of booking, where the two differ. An entry takes its place
-- at its ex moment: after every execution dated before it, before every execution dated at or
-- after it, whenever either was booked. Executions between two ex moments keep the order they
-- were booked in (the position's sequence), as without entries.
--
-- The two orders differ only for an action applied to a position whose shares had traded ex
-- already (trading/sql/actions/0014.sql applies it to the position held at the ex moment,
-- then replays what traded after): an execution booked after an entry is dated at or after
-- its ex moment (execution_before_applied_action), so it comes after the entry either way.

-- Where an execution stands in time: a correction where the execution it corrects (through
-- any chain of corrections) stood, since it restates that trade; anything else at its own
-- executed_at. A fill of before an ex moment corrected after it is a trade of before it.
CREATE OR REPLACE FUNCTION trading_placed_at(p_execution bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain AS (
        SELECT x.supersedes_id, x.executed_at FROM trading_execution x WHERE x.id = p_execution
        UNION ALL
        SELECT o.supersedes_id, o.executed_at
        FROM chain c JOIN trading_execution o ON o.id = c.supersedes_id
    )
    SELECT c.executed_at FROM chain c WHERE c.supersedes_id IS NULL
$$;

-- A position (account, instrument) replayed from nothing: its executions in force (not busted
-- nor corrected, nor ``p_superseded``, the one a bust or correction being booked replaces)
-- and its entries, in time order; only what lies before ``p_until`` when given (the entries of
-- that very moment included: an earlier action of the same ex-date), a correction placed where
-- the trade it corrects stood (trading_placed_at). An entry's state after it is taken as
-- recorded: the state before it is what it was applied to.
CREATE OR REPLACE FUNCTION trading_replay_through(
    p_account bigint, p_instrument bigint, p_superseded bigint, p_until timestamptz,
    p_multiplier numeric,
    OUT new_qty numeric, OUT new_avg_cost numeric, OUT new_realized numeric
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    e record;
    step record;
BEGIN
    new_qty := 0; new_avg_cost := 0; new_realized := 0;
    FOR e IN
        WITH entries AS MATERIALIZED (
            SELECT a.position_sequence AS seq, a.ex_at, a.quantity_after,
                   a.average_cost_after, a.realized_pnl
            FROM trading_actionentry a
            WHERE a.account_id = p_account AND a.instrument_id = p_instrument
              AND (p_until IS NULL OR a.ex_at <= p_until)
        )
        SELECT false AS entry,
               coalesce((SELECT max(n.ex_at) FROM entries n WHERE n.ex_at <= t.placed_at),
                        '-infinity') AS epoch,
               x.position_sequence AS seq, x.quantity, x.price,
               NULL::numeric AS average_cost, NULL::numeric AS realized
        FROM trading_execution x
        CROSS JOIN LATERAL (SELECT CASE WHEN x.supersedes_id IS NULL THEN x.executed_at
                                        ELSE trading_placed_at(x.id) END AS placed_at) t
        WHERE x.account_id = p_account AND x.instrument_id = p_instrument
          AND x.kind <> 'bust' AND x.id IS DISTINCT FROM p_superseded
          AND (p_until IS NULL OR t.placed_at < p_until)
          AND NOT EXISTS (SELECT 1 FROM trading_execution b WHERE b.supersedes_id = x.id)
        UNION ALL
        SELECT true, n.ex_at, n.seq, n.quantity_after, NULL, n.average_cost_after,
               n.realized_pnl
        FROM entries n
        ORDER BY epoch, entry DESC, seq
    LOOP
        IF e.entry THEN
            new_qty := e.quantity; new_avg_cost := e.average_cost;
            new_realized := new_realized + e.realized;
            CONTINUE;
        END IF;
        SELECT * INTO step FROM trading_position_step(new_qty, new_avg_cost, e.quantity, e.price,
                                                      p_multiplier);
        new_qty := step.new_qty; new_avg_cost := step.new_avg_cost;
        new_realized := new_realized + step.realized;
    END LOOP;
END $$;

-- A bust or correction replays the position from scratch (version 0013 replayed it in the
-- position's sequence), then takes the correction being booked.
CREATE OR REPLACE FUNCTION trading_replay_position(
    p trading_position, superseded bigint, pending trading_execution, multiplier numeric
) RETURNS trading_position LANGUAGE plpgsql AS $$
DECLARE
    step record;
BEGIN
    SELECT r.new_qty, r.new_avg_cost, r.new_realized
    INTO p.quantity, p.average_cost, p.realized_pnl
    FROM trading_replay_through(p.account_id, p.instrument_id, superseded, NULL, multiplier) r;
    IF pending.kind = 'correction' THEN
        SELECT * INTO step FROM trading_position_step(p.quantity, p.average_cost, pending.quantity,
                                      pending.price, multiplier);
        p.quantity := step.new_qty; p.average_cost := step.new_avg_cost;
        p.realized_pnl := p.realized_pnl + step.realized;
    END IF;
    RETURN p;
END $$;
