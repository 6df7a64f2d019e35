BEGIN;
--
-- Raw SQL operation
--
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

--
-- Raw SQL operation
--
-- Version 0014 of the books' corporate actions (0013): an action applies to the position held
-- at its ex moment, whenever it is applied. Version 0013 applied it to the position as it
-- stood and left out a position whose shares had traded ex before the daily job ran, or before
-- the action was learnt: the split never reached it. Now:
--   * the state at the ex moment is the replay of what came before it (trading_position_at;
--     the position as it stands when nothing traded ex, the common case, with no replay);
--   * the entry records the action's effect on that state, at its ex moment, and takes the
--     next slot of the position's sequence; the position is then replayed through it
--     (trading_replay_through, trading/sql/books/0014.sql: an entry replays at its ex moment);
--   * the same for the new instrument's position of a spin-off: its shares received at the ex
--     moment, before the fills of it dated at or after then;
--   * what the replay cannot place is left out and named (trading_action_blocked; listed by
--     apply_actions): an entry already applied that comes after the action (a later ex-date,
--     or a later kind of the same ex-date: its state was recorded without this action), a
--     delisting of a position that traded after it; a correction, booked after the ex moment,
--     of a fill of before it counts where the fill stood (trading_placed_at), and a bust
--     voids its fill from the start;
--   * an action applies once its ex moment has come (the exchange's: marketdata_ex_moment
--     (instrument, date), marketdata/sql/actions/0013.sql), not from 00:00 UTC of its date:
--     the prices go ex then, and so do the books (the job runs hourly);
--   * each action is applied alone, in a subtransaction: one the books cannot hold (a position
--     the ratio overflows) is refused with a WARNING naming it, and the others still apply;
--   * a position that did not exist at the ex moment (no execution and no entry before it) is
--     not looked at again on every run.
-- The effects themselves (trading_action_effect, trading_spin_off_received) are 0013's; a
-- dividend's cash stays dated 00:00 UTC of its pay date.

-- Whether a position has executions in force dated at or after ``p_at``.
CREATE OR REPLACE FUNCTION trading_traded_since(
    p_account bigint, p_instrument bigint, p_at timestamptz
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM trading_execution x
                   WHERE x.account_id = p_account AND x.instrument_id = p_instrument
                     AND x.executed_at >= p_at AND x.kind <> 'bust'
                     AND NOT EXISTS (SELECT 1 FROM trading_execution s
                                     WHERE s.supersedes_id = x.id))
$$;

-- Whether a position holds an entry that comes after an action of rank ``p_rank`` at ``p_at``:
-- of a later ex moment, or of the same one and a later kind (trading_action_rank).
CREATE OR REPLACE FUNCTION trading_entry_after(
    p_account bigint, p_instrument bigint, p_at timestamptz, p_rank integer
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM trading_actionentry e
                   JOIN marketdata_corporateaction v ON v.id = e.action_id
                   WHERE e.account_id = p_account AND e.instrument_id = p_instrument
                     AND (e.ex_at > p_at
                          OR e.ex_at = p_at AND trading_action_rank(v.kind) > p_rank))
$$;

-- Whether a position may have held its instrument at ``p_at`` and the action be due: it holds
-- some now or traded since, and it existed before (an execution dated before ``p_at``, or an
-- entry of then or before: a spin-off's shares). A position opened later is skipped on the
-- (account, instrument, executed_at) index, not replayed on every run.
CREATE OR REPLACE FUNCTION trading_may_hold(
    p_account bigint, p_instrument bigint, p_quantity numeric, p_at timestamptz
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (p_quantity <> 0 OR trading_traded_since(p_account, p_instrument, p_at))
       AND (EXISTS (SELECT 1 FROM trading_execution x
                    WHERE x.account_id = p_account AND x.instrument_id = p_instrument
                      AND x.executed_at < p_at)
            OR EXISTS (SELECT 1 FROM trading_actionentry e
                       WHERE e.account_id = p_account AND e.instrument_id = p_instrument
                         AND e.ex_at <= p_at))
$$;

-- Why an action of kind ``p_kind`` at ``p_at`` cannot be applied to a position (and to a
-- spin-off's new instrument's), NULL when it can: what the replay cannot place.
CREATE OR REPLACE FUNCTION trading_action_blocked(
    p_account bigint, p_instrument bigint, p_new_instrument bigint, p_kind text,
    p_at timestamptz
) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN trading_entry_after(p_account, p_instrument, p_at, trading_action_rank(p_kind))
          OR trading_entry_after(p_account, p_new_instrument, p_at, trading_action_rank(p_kind))
            THEN 'an action applied to the position first comes after it (a later ex-date, or'
                 ' a later kind of the same ex-date)'
        WHEN p_kind = 'delisting' AND trading_traded_since(p_account, p_instrument, p_at)
            THEN 'the position traded after its delisting'
    END
$$;

-- A position as it stood at ``p_at`` (zero when it did not exist), its last slot in the
-- sequence as it stands, and whether it traded since (then the state is replayed).
CREATE OR REPLACE FUNCTION trading_position_at(
    p_account bigint, p_instrument bigint, p_at timestamptz, p_multiplier numeric,
    OUT quantity numeric, OUT average_cost numeric, OUT realized_pnl numeric,
    OUT last_sequence bigint, OUT traded_since boolean
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    p trading_position;
BEGIN
    SELECT * INTO p FROM trading_position
    WHERE account_id = p_account AND instrument_id = p_instrument;
    last_sequence := coalesce(p.last_sequence, 0);
    traded_since := trading_traded_since(p_account, p_instrument, p_at);
    IF NOT traded_since THEN
        quantity := coalesce(p.quantity, 0); average_cost := coalesce(p.average_cost, 0);
        realized_pnl := coalesce(p.realized_pnl, 0);
        RETURN;
    END IF;
    SELECT r.new_qty, r.new_avg_cost, r.new_realized INTO quantity, average_cost, realized_pnl
    FROM trading_replay_through(p_account, p_instrument, NULL, p_at, p_multiplier) r;
END $$;

-- Apply every current action whose ex moment has come, with an ex-date up to p_through (NULL:
-- any), not applied yet to the positions that held its instrument at its ex moment: how many
-- entries were written. One statement per action, in ex-date and kind order, so that a later
-- action sees an earlier one's effect; each in a subtransaction, refused alone (a WARNING
-- names it). An action counts as applied to an account once any version of it was (its
-- instrument, kind and ex-date); an applied action is neither restated nor withdrawn
-- (trading_action_applied_stays). Only who writes every account (a command or job, a
-- superuser) applies actions.
CREATE OR REPLACE FUNCTION trading_apply_actions(p_through date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' SET qvp.books = 'writing'
AS $$
DECLARE
    todo record;
    written integer;
    applied integer := 0;
BEGIN
    IF NOT (SELECT trading_sees_all(true, session_user)) THEN
        RAISE EXCEPTION 'trading_apply_actions: corporate actions are applied by a command or'
            ' job, or a superuser: they write every account''s books'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- No ex moment of a later ex-date has come (the earliest, at UTC+14, is 10:00 UTC the day
    -- before): a date beyond is a mistake, said as one.
    IF p_through > current_date + 1 THEN
        RAISE EXCEPTION 'trading_apply_actions: p_through % is after tomorrow (%): an action is'
            ' applied from its ex moment on', p_through, current_date + 1
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR todo IN
        SELECT a.id, a.kind, a.ex_date, a.instrument_id, a.new_instrument_id, x.ex_at, i.symbol
        FROM marketdata_actions_known_at(NULL) a
        CROSS JOIN LATERAL (SELECT marketdata_ex_moment(a.instrument_id, a.ex_date) AS ex_at) x
        JOIN marketdata_instrument i ON i.id = a.instrument_id
        WHERE (p_through IS NULL OR a.ex_date <= p_through) AND x.ex_at <= now()
          AND EXISTS (SELECT 1 FROM trading_position p
                      WHERE p.instrument_id = a.instrument_id
                        AND NOT trading_action_applied(p.account_id, a.instrument_id, a.kind,
                                                       a.ex_date)
                        AND trading_may_hold(p.account_id, p.instrument_id, p.quantity, x.ex_at))
        ORDER BY a.ex_date, trading_action_rank(a.kind), a.id
    LOOP
        BEGIN
            written := trading_apply_one_action(todo.id, todo.instrument_id,
                                                todo.new_instrument_id, todo.ex_at);
            applied := applied + written;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'corporate action % (% of %, ex %) not applied: %', todo.id,
                replace(todo.kind, '_', ' '), todo.symbol, todo.ex_date, SQLERRM;
        END;
    END LOOP;
    RETURN applied;
END $$;

-- One action of trading_apply_actions: its positions (and a spin-off's new instrument's,
-- made first so that a fill of it being booked waits, then sees the entry) locked in one
-- order, the entries written, and the positions that traded after the ex moment replayed.
CREATE OR REPLACE FUNCTION trading_apply_one_action(
    p_action bigint, p_instrument bigint, p_new_instrument bigint, p_ex_at timestamptz
) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    written integer;
    late_accounts bigint[];
    late_instruments bigint[];
BEGIN
    IF p_new_instrument IS NOT NULL THEN
        INSERT INTO trading_position (account_id, instrument_id, quantity, average_cost,
                                      realized_pnl, last_sequence, last_execution_at,
                                      updated_at)
        SELECT p.account_id, p_new_instrument, 0, 0, 0, 0, NULL, statement_timestamp()
        FROM trading_position p
        WHERE p.instrument_id = p_instrument
          AND trading_may_hold(p.account_id, p.instrument_id, p.quantity, p_ex_at)
        ON CONFLICT (account_id, instrument_id) DO NOTHING;
    END IF;
    PERFORM 1 FROM trading_position p
    WHERE p.instrument_id IN (p_instrument, p_new_instrument)
    ORDER BY p.id FOR UPDATE;
    SELECT count(*), array_agg(s.account_id) FILTER (WHERE s.replay),
           array_agg(s.instrument_id) FILTER (WHERE s.replay)
    INTO written, late_accounts, late_instruments
    FROM trading_apply_action_set(p_action) s;
    -- A position that traded after the ex moment: the entry recorded the action's effect on
    -- the shares held then; the position is the replay through it.
    UPDATE trading_position p
    SET (quantity, average_cost, realized_pnl) =
            (SELECT r.new_qty, r.new_avg_cost, r.new_realized
             FROM trading_replay_through(p.account_id, p.instrument_id, NULL, NULL,
                                         i.multiplier) r)
    FROM unnest(late_accounts, late_instruments) AS l(account_id, instrument_id),
         marketdata_instrument i
    WHERE p.account_id = l.account_id AND p.instrument_id = l.instrument_id
      AND i.id = p.instrument_id;
    RETURN written;
END $$;

-- Whether an account's position in an instrument holds an entry of any version of the action
-- (its instrument, kind and ex-date).
CREATE OR REPLACE FUNCTION trading_action_applied(
    p_account bigint, p_instrument bigint, p_kind text, p_ex_date date
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM trading_actionentry e
                   JOIN marketdata_corporateaction v ON v.id = e.action_id
                   WHERE e.account_id = p_account AND e.instrument_id = p_instrument
                     AND v.instrument_id = p_instrument AND v.kind = p_kind
                     AND v.ex_date = p_ex_date)
$$;

-- One action of trading_apply_actions: the entries, positions and cash in one statement; a row
-- per entry written, ``replay`` where the position traded after the ex moment (its state is
-- then replayed by the caller).
CREATE OR REPLACE FUNCTION trading_apply_action_set(p_action bigint)
RETURNS TABLE (account_id bigint, instrument_id bigint, replay boolean)
LANGUAGE sql SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    WITH candidates AS MATERIALIZED (
        SELECT p.account_id, a.*, x.ex_at
        FROM marketdata_actions_known_at(NULL) a
        CROSS JOIN LATERAL (SELECT marketdata_ex_moment(a.instrument_id, a.ex_date) AS ex_at) x
        JOIN trading_position p ON p.instrument_id = a.instrument_id
        WHERE a.id = p_action
          AND NOT trading_action_applied(p.account_id, a.instrument_id, a.kind, a.ex_date)
          AND trading_may_hold(p.account_id, p.instrument_id, p.quantity, x.ex_at)
          AND trading_action_blocked(p.account_id, a.instrument_id, a.new_instrument_id, a.kind,
                                     x.ex_at) IS NULL
    ),
    todo AS MATERIALIZED (
        SELECT c.account_id, c.instrument_id, c.id AS action_id, c.kind, c.ex_date, c.ex_at,
               s.quantity AS qty, s.average_cost AS avg_cost, s.realized_pnl, s.last_sequence,
               s.traded_since AS replay, c.ratio, c.cost_fraction, c.amount,
               c.currency AS dividend_currency, coalesce(c.pay_date, c.ex_date) AS pay_date,
               c.final_price, c.new_instrument_id, i.symbol, i.currency, i.multiplier,
               i.asset_class = 'equity' AS whole,
               marketdata_close_before(c.instrument_id, c.ex_at, NULL)::numeric AS close
        FROM candidates c
        JOIN marketdata_instrument i ON i.id = c.instrument_id
        CROSS JOIN LATERAL trading_position_at(c.account_id, c.instrument_id, c.ex_at,
                                               i.multiplier) s
        WHERE s.quantity <> 0
    ),
    held AS MATERIALIZED (
        SELECT t.account_id, t.instrument_id, t.action_id, t.ex_at, t.qty, t.avg_cost,
               t.realized_pnl, t.last_sequence, t.replay, e.new_qty, e.new_avg_cost,
               e.realized, e.cash, e.price,
               CASE WHEN t.kind = 'cash_dividend' THEN t.dividend_currency ELSE t.currency END
                   AS cash_currency,
               CASE t.kind WHEN 'cash_dividend' THEN 'dividend' WHEN 'delisting' THEN 'delisting'
                           ELSE 'in_lieu' END AS cash_kind,
               CASE WHEN t.kind = 'cash_dividend' THEN marketdata_ex_moment(t.pay_date)
                    ELSE t.ex_at END AS cash_at,
               format('%s of %s, ex %s', replace(t.kind, '_', ' '), t.symbol, t.ex_date) AS note
        FROM todo t
        CROSS JOIN LATERAL trading_action_effect(t.kind, t.qty, t.avg_cost, t.ratio,
                                                 t.cost_fraction, t.amount, t.final_price,
                                                 t.close, t.whole, t.multiplier) e
    ),
    received AS MATERIALIZED (
        SELECT t.account_id, t.new_instrument_id AS instrument_id, t.action_id, t.ex_at,
               c.quantity AS qty, c.average_cost AS avg_cost, c.realized_pnl, c.last_sequence,
               c.traded_since AS replay, r.new_qty, r.new_avg_cost, r.realized, r.cash, r.price,
               n.currency AS cash_currency, 'in_lieu' AS cash_kind, t.ex_at AS cash_at,
               format('spin-off of %s into %s, ex %s', t.symbol, n.symbol, t.ex_date) AS note
        FROM todo t
        JOIN marketdata_instrument n ON n.id = t.new_instrument_id
        CROSS JOIN LATERAL trading_position_at(t.account_id, t.new_instrument_id, t.ex_at,
                                               n.multiplier) c
        CROSS JOIN LATERAL trading_spin_off_received(
            c.quantity, c.average_cost, round(t.qty * t.ratio, 8),
            round(t.avg_cost * t.cost_fraction / t.ratio, 12),
            marketdata_close_before(t.new_instrument_id, t.ex_at, NULL)::numeric,
            n.asset_class = 'equity', n.multiplier) r
        WHERE t.kind = 'spin_off'
    ),
    moved AS MATERIALIZED (
        SELECT m.*,
               CASE WHEN m.cash <> 0
                    THEN nextval(pg_get_serial_sequence('trading_cashentry', 'id')) END AS cash_id
        FROM (SELECT * FROM held UNION ALL SELECT * FROM received) AS m
    ),
    paid AS (
        INSERT INTO trading_cashentry (id, account_id, kind, amount, currency, execution_id,
                                       entry_at, note, created_at)
        SELECT m.cash_id, m.account_id, m.cash_kind, m.cash, m.cash_currency, NULL, m.cash_at,
               m.note, statement_timestamp()
        FROM moved m WHERE m.cash_id IS NOT NULL
    ),
    positions AS (
        INSERT INTO trading_position (account_id, instrument_id, quantity, average_cost,
                                      realized_pnl, last_sequence, last_execution_at, updated_at)
        SELECT m.account_id, m.instrument_id, m.new_qty, m.new_avg_cost,
               m.realized_pnl + m.realized, m.last_sequence + 1, NULL, statement_timestamp()
        FROM moved m
        ON CONFLICT (account_id, instrument_id) DO UPDATE SET
            quantity = EXCLUDED.quantity, average_cost = EXCLUDED.average_cost,
            realized_pnl = EXCLUDED.realized_pnl, last_sequence = EXCLUDED.last_sequence,
            updated_at = EXCLUDED.updated_at
    ),
    entries AS (
        INSERT INTO trading_actionentry (account_id, instrument_id, action_id, position_sequence,
                                         ex_at, quantity_before, quantity_after,
                                         average_cost_before, average_cost_after, realized_pnl,
                                         price, cash, cash_entry_id, applied_at)
        SELECT m.account_id, m.instrument_id, m.action_id, m.last_sequence + 1, m.ex_at, m.qty,
               m.new_qty, m.avg_cost, m.new_avg_cost, m.realized, m.price,
               CASE WHEN m.cash <> 0 THEN m.cash END, m.cash_id, statement_timestamp()
        FROM moved m
    )
    SELECT m.account_id, m.instrument_id, m.replay FROM moved m
$$;

DROP FUNCTION IF EXISTS trading_apply_actions_of(date, integer);
DROP FUNCTION IF EXISTS trading_traded_ex(bigint, bigint, date);

REVOKE ALL ON FUNCTION trading_apply_actions(date),
    trading_apply_one_action(bigint, bigint, bigint, timestamptz),
    trading_apply_action_set(bigint) FROM PUBLIC;

--
-- Create index execution_position_time_idx on field(s) account, instrument, executed_at of model execution
--
CREATE INDEX "execution_position_time_idx" ON "trading_execution" ("account_id", "instrument_id", "executed_at");
--
-- Alter field ex_at on actionentry
--
-- (no-op)
COMMIT;
