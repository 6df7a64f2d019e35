BEGIN;
--
-- Alter field ex_at on actionentry
--
-- (no-op)
--
-- Create index execution_position_time_idx on field(s) account, instrument, executed_at of model execution
--
DROP INDEX IF EXISTS "execution_position_time_idx";
--
-- Raw SQL operation
--
-- The books follow corporate actions (marketdata/sql/actions/0012.sql): an entry per account,
-- action and position touched (trading_actionentry), written by the owner's
-- trading_apply_actions alone, in the same statement as the position it moves and the cash it
-- books. A position is the replay of its executions and its entries, in the position's
-- sequence (an entry takes the next slot of its position's history, like an execution).
--
-- The rule of the quantity an action applies to: the position as it stands when the action is
-- applied, which the daily job does just after the ex moment (00:00 UTC of the ex-date,
-- marketdata_ex_moment). The database keeps that equal to the position held at the ex moment:
--   * an execution dated before the ex moment of an entry applied to its position, or a bust or
--     correction of one, is refused (execution_before_applied_action): the past of an applied
--     action does not change;
--   * a position with executions in force dated at or after the ex moment, booked before the
--     action was applied, is left out (its shares traded ex already; trading/management/
--     commands/apply_actions.py names them).
--
-- The effects (trading_action_effect; trading/replay.py mirrors them and their rounding):
--   * split (ratio r) and stock dividend (ratio s, factor 1 + s): quantity x factor, average
--     cost / factor, the cost basis unchanged; equities hold whole shares (an instrument names
--     no lot size, so an equity's quantity is truncated toward zero): the fraction left over is
--     sold as cash in lieu at the close before the ex moment / factor, or at the adjusted
--     average cost when there is no close (no P&L then);
--   * cash dividend: no change to the position; quantity x amount x multiplier in the
--     dividend's currency, dated on the pay date (the ex-date without one); a short pays it;
--   * spin-off (ratio, new instrument, cost fraction): the old position's average cost x
--     (1 - cost fraction); the new instrument's position receives quantity x ratio at the moved
--     cost (old average x cost fraction / ratio a share), whole shares for an equity (the
--     fraction in lieu at the new instrument's close before the ex moment, else at that cost);
--   * delisting: the position is closed at the final price, the realized P&L booked and the
--     proceeds paid in cash.

-- Which kind goes first when one instrument has several on an ex-date: the dividend is paid on
-- the shares held before a split of the same day.
CREATE OR REPLACE FUNCTION trading_action_rank(kind text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind WHEN 'cash_dividend' THEN 1 WHEN 'spin_off' THEN 2
                     WHEN 'stock_dividend' THEN 3 WHEN 'split' THEN 4 ELSE 5 END
$$;

-- Whole shares: the fraction of a position (toward zero) sold at price.
CREATE OR REPLACE FUNCTION trading_sell_fraction(
    qty numeric, avg_cost numeric, price numeric, multiplier numeric,
    OUT new_qty numeric, OUT new_avg_cost numeric, OUT realized numeric, OUT cash numeric
) LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    fraction numeric := qty - trunc(qty);
    step record;
BEGIN
    new_qty := qty; new_avg_cost := avg_cost; realized := 0; cash := 0;
    IF fraction = 0 THEN
        RETURN;
    END IF;
    SELECT * INTO step FROM trading_position_step(qty, avg_cost, -fraction, price, multiplier);
    new_qty := step.new_qty; new_avg_cost := step.new_avg_cost; realized := step.realized;
    cash := round(fraction * price * multiplier, 8);
END $$;

-- What an action does to the position of its instrument (the spin-off's new shares:
-- trading_spin_off_received). ``close`` is the close before the ex moment (NULL: none);
-- ``price`` comes back as the price cash was paid at (in lieu, or the final price), else NULL.
CREATE OR REPLACE FUNCTION trading_action_effect(
    kind text, qty numeric, avg_cost numeric, ratio numeric, cost_fraction numeric,
    amount numeric, final_price numeric, close numeric, whole boolean, multiplier numeric,
    OUT new_qty numeric, OUT new_avg_cost numeric, OUT realized numeric, OUT cash numeric,
    OUT price numeric
) LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    factor numeric;
    step record;
BEGIN
    new_qty := qty; new_avg_cost := avg_cost; realized := 0; cash := 0; price := NULL;
    IF kind IN ('split', 'stock_dividend') THEN
        factor := CASE kind WHEN 'split' THEN ratio ELSE 1 + ratio END;
        new_qty := round(qty * factor, 8);
        -- A ratio stored to 10 decimals (1:3 as 0.3333333333) leaves a whole quantity a hair
        -- off: made whole within the ratio's rounding, so no share is sold in lieu for it.
        IF whole AND abs(new_qty - round(new_qty)) <= greatest(abs(qty) * 1e-10, 1e-8) THEN
            new_qty := round(new_qty);
        END IF;
        new_avg_cost := round(avg_cost / factor, 12);
        IF whole AND new_qty <> trunc(new_qty) THEN
            price := coalesce(round(close / factor, 8), round(new_avg_cost, 8));
            SELECT * INTO step FROM trading_sell_fraction(new_qty, new_avg_cost, price, multiplier);
            new_qty := step.new_qty; new_avg_cost := step.new_avg_cost;
            realized := step.realized; cash := step.cash;
        END IF;
    ELSIF kind = 'spin_off' THEN
        new_avg_cost := round(avg_cost * (1 - cost_fraction), 12);
    ELSIF kind = 'cash_dividend' THEN
        cash := round(qty * amount * multiplier, 8);
    ELSIF kind = 'delisting' THEN
        SELECT * INTO step FROM trading_position_step(qty, avg_cost, -qty, final_price, multiplier);
        new_qty := step.new_qty; new_avg_cost := step.new_avg_cost; realized := step.realized;
        cash := round(qty * final_price * multiplier, 8);
        price := final_price;
    END IF;
END $$;

-- A spin-off's new shares: ``delivered`` received at ``cost`` a share into the position
-- (qty, avg_cost) held in the new instrument, then whole shares for an equity.
CREATE OR REPLACE FUNCTION trading_spin_off_received(
    qty numeric, avg_cost numeric, delivered numeric, cost numeric, close numeric,
    whole boolean, multiplier numeric,
    OUT new_qty numeric, OUT new_avg_cost numeric, OUT realized numeric, OUT cash numeric,
    OUT price numeric
) LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    step record;
BEGIN
    SELECT * INTO step FROM trading_position_step(qty, avg_cost, delivered, cost, multiplier);
    new_qty := step.new_qty; new_avg_cost := step.new_avg_cost; realized := step.realized;
    cash := 0; price := NULL;
    IF whole AND new_qty <> trunc(new_qty) THEN
        price := coalesce(round(close, 8), round(cost, 8));
        SELECT * INTO step FROM trading_sell_fraction(new_qty, new_avg_cost, price, multiplier);
        new_qty := step.new_qty; new_avg_cost := step.new_avg_cost;
        realized := realized + step.realized; cash := step.cash;
    END IF;
END $$;

-- Whether a position has executions in force dated at or after an ex-date's moment: its shares
-- traded ex already, so it is not the position held at the ex moment (left out; a position
-- opened after the ex-date is no concern of the action at all).
CREATE OR REPLACE FUNCTION trading_traded_ex(p_account bigint, p_instrument bigint, p_ex_date date)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM trading_execution x
                   WHERE x.account_id = p_account AND x.instrument_id = p_instrument
                     AND x.executed_at >= marketdata_ex_moment(p_ex_date) AND x.kind <> 'bust'
                     AND NOT EXISTS (SELECT 1 FROM trading_execution s
                                     WHERE s.supersedes_id = x.id))
        -- An action of a later ex-date applied already (this one learnt late): the position
        -- no longer holds what it held at this ex moment either.
        OR EXISTS (SELECT 1 FROM trading_actionentry e
                   WHERE e.account_id = p_account AND e.instrument_id = p_instrument
                     AND e.ex_at > marketdata_ex_moment(p_ex_date))
$$;

-- Apply every current action with an ex-date up to p_through (NULL: today, UTC) not applied
-- yet to the positions that hold its instrument: how many entries were written. One statement
-- per ex-date and kind rank (all accounts and instruments at once), in date order, so that a
-- later action sees an earlier one's effect. An action counts as applied to an account once
-- any version of it was (its instrument, kind and ex-date); an applied action is neither
-- restated nor withdrawn (trading_action_applied_stays). Only who writes every account (a command or job, a superuser)
-- applies actions; p_through may not be after today, since applying before the ex moment
-- would refuse the executions still to come before it.
CREATE OR REPLACE FUNCTION trading_apply_actions(p_through date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' SET qvp.books = 'writing'
AS $$
DECLARE
    through date := coalesce(p_through, current_date);
    todo record;
    written integer;
    applied integer := 0;
BEGIN
    IF NOT (SELECT trading_sees_all(true, session_user)) THEN
        RAISE EXCEPTION 'trading_apply_actions: corporate actions are applied by a command or'
            ' job, or a superuser: they write every account''s books'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF through > current_date THEN
        RAISE EXCEPTION 'trading_apply_actions: p_through % is after today (%): an action is'
            ' applied from its ex-date on', through, current_date
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR todo IN
        SELECT DISTINCT a.ex_date, trading_action_rank(a.kind) AS rank
        FROM marketdata_actions_known_at(NULL) a
        JOIN trading_position p ON p.instrument_id = a.instrument_id AND p.quantity <> 0
        WHERE a.ex_date <= through
          AND NOT EXISTS (SELECT 1 FROM trading_actionentry e
                          JOIN marketdata_corporateaction v ON v.id = e.action_id
                          WHERE e.account_id = p.account_id AND e.instrument_id = a.instrument_id
                            AND v.instrument_id = a.instrument_id AND v.kind = a.kind
                            AND v.ex_date = a.ex_date)
          AND NOT trading_traded_ex(p.account_id, p.instrument_id, a.ex_date)
        ORDER BY 1, 2
    LOOP
        -- The positions first, in one order: executions being booked wait, then see the entry.
        PERFORM 1 FROM trading_position p
        JOIN marketdata_actions_known_at(NULL) a
          ON p.instrument_id IN (a.instrument_id, a.new_instrument_id)
        WHERE a.ex_date = todo.ex_date AND trading_action_rank(a.kind) = todo.rank
        ORDER BY p.id FOR UPDATE OF p;
        written := trading_apply_actions_of(todo.ex_date, todo.rank);
        applied := applied + written;
    END LOOP;
    RETURN applied;
END $$;

-- One ex-date and kind rank of trading_apply_actions: the entries, positions and cash in one
-- statement.
CREATE OR REPLACE FUNCTION trading_apply_actions_of(p_ex_date date, p_rank integer)
RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
    WITH todo AS MATERIALIZED (
        SELECT p.account_id, a.instrument_id, a.id AS action_id, a.kind, a.ex_date,
               marketdata_ex_moment(a.ex_date) AS ex_at, p.quantity AS qty,
               p.average_cost AS avg_cost, p.realized_pnl, p.last_sequence, a.ratio,
               a.cost_fraction, a.amount, a.currency AS dividend_currency,
               coalesce(a.pay_date, a.ex_date) AS pay_date, a.final_price,
               a.new_instrument_id, i.symbol, i.currency, i.multiplier,
               i.asset_class = 'equity' AS whole,
               marketdata_close_before(a.instrument_id, marketdata_ex_moment(a.ex_date),
                                       NULL)::numeric AS close
        FROM marketdata_actions_known_at(NULL) a
        JOIN trading_position p ON p.instrument_id = a.instrument_id AND p.quantity <> 0
        JOIN marketdata_instrument i ON i.id = a.instrument_id
        WHERE a.ex_date = p_ex_date AND trading_action_rank(a.kind) = p_rank
          AND NOT EXISTS (SELECT 1 FROM trading_actionentry e
                          JOIN marketdata_corporateaction v ON v.id = e.action_id
                          WHERE e.account_id = p.account_id AND e.instrument_id = a.instrument_id
                            AND v.instrument_id = a.instrument_id AND v.kind = a.kind
                            AND v.ex_date = a.ex_date)
          AND NOT trading_traded_ex(p.account_id, p.instrument_id, a.ex_date)
    ),
    held AS MATERIALIZED (
        SELECT t.account_id, t.instrument_id, t.action_id, t.ex_at, t.qty, t.avg_cost,
               t.realized_pnl, t.last_sequence, e.new_qty, e.new_avg_cost, e.realized, e.cash,
               e.price,
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
               coalesce(c.quantity, 0) AS qty, coalesce(c.average_cost, 0) AS avg_cost,
               coalesce(c.realized_pnl, 0) AS realized_pnl,
               coalesce(c.last_sequence, 0) AS last_sequence, r.new_qty, r.new_avg_cost,
               r.realized, r.cash, r.price, n.currency AS cash_currency, 'in_lieu' AS cash_kind,
               t.ex_at AS cash_at,
               format('spin-off of %s into %s, ex %s', t.symbol, n.symbol, t.ex_date) AS note
        FROM todo t
        JOIN marketdata_instrument n ON n.id = t.new_instrument_id
        LEFT JOIN trading_position c
          ON c.account_id = t.account_id AND c.instrument_id = t.new_instrument_id
        CROSS JOIN LATERAL trading_spin_off_received(
            coalesce(c.quantity, 0), coalesce(c.average_cost, 0), round(t.qty * t.ratio, 8),
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
        RETURNING 1
    )
    SELECT count(*)::integer FROM entries
$$;

-- Entries are the books' own: written by trading_apply_actions, never edited nor deleted.
CREATE OR REPLACE TRIGGER trading_actionentry_written_by_the_books BEFORE INSERT
    ON trading_actionentry FOR EACH ROW EXECUTE FUNCTION trading_refuse_direct_write(
        'corporate-action entries are written by trading_apply_actions',
        'actionentry_written_by_the_books');
CREATE OR REPLACE TRIGGER trading_actionentry_never_edited BEFORE UPDATE OR DELETE
    ON trading_actionentry FOR EACH ROW EXECUTE FUNCTION trading_refuse_edit(
        'corporate-action entries are never edited', 'actionentry_never_edited');

-- What an account held at a time as known at another (NULL: now): its executions in force then
-- (trading/snapshots.py's rule) and the quantity its corporate-action entries moved by then.
-- For the readers of holdings of the past (snapshots; risk_holdings may read it too).
CREATE OR REPLACE FUNCTION trading_held_at(
    p_account bigint, p_as_of timestamptz, p_known_at timestamptz DEFAULT NULL
) RETURNS TABLE (instrument_id bigint, quantity numeric)
LANGUAGE sql STABLE AS $$
    SELECT m.instrument_id, sum(m.quantity) FROM (
        SELECT x.instrument_id, x.quantity FROM trading_execution x
        WHERE x.account_id = p_account AND x.executed_at <= p_as_of AND x.kind <> 'bust'
          AND (p_known_at IS NULL OR x.created_at <= p_known_at)
          AND NOT EXISTS (SELECT 1 FROM trading_execution s
                          WHERE s.supersedes_id = x.id AND s.executed_at <= p_as_of
                            AND (p_known_at IS NULL OR s.created_at <= p_known_at))
        UNION ALL
        SELECT a.instrument_id, a.quantity_after - a.quantity_before FROM trading_actionentry a
        WHERE a.account_id = p_account AND a.ex_at <= p_as_of
          AND (p_known_at IS NULL OR a.applied_at <= p_known_at)
    ) AS m
    GROUP BY m.instrument_id
    HAVING sum(m.quantity) <> 0
$$;

-- An action the books applied stays what they applied: withdrawing it or restating its terms
-- (marketdata_action_set, _withdraw close the version) would leave positions split, or cash
-- paid, by an action the prices no longer know, and a corrected ex-date would apply it twice.
-- Refused, naming the action and how many positions hold its entries; whoever writes.
CREATE OR REPLACE FUNCTION trading_action_applied_stays() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    held bigint;
BEGIN
    IF OLD.known_until IS NULL AND NEW.known_until IS NOT NULL THEN
        SELECT count(*) INTO held FROM trading_actionentry WHERE action_id = OLD.id;
        IF held > 0 THEN
            RAISE EXCEPTION 'corporate action % (% of instrument % on %) was applied to the books'
                ' already (% entries): it is neither withdrawn nor restated', OLD.id, OLD.kind,
                OLD.instrument_id, OLD.ex_date, held
                USING ERRCODE = 'check_violation', CONSTRAINT = 'action_applied_stays';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER trading_action_applied_stays
    BEFORE UPDATE ON marketdata_corporateaction
    FOR EACH ROW EXECUTE FUNCTION trading_action_applied_stays();

-- Row-level security, as on the other account-scoped tables (trading/sql/security/0003.sql):
-- read where the account is visible; nobody but the owner's function writes.
ALTER TABLE trading_actionentry ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON trading_actionentry;
CREATE POLICY account_read ON trading_actionentry
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user))
                      OR account_id IN (SELECT trading_group_accounts(false)));

REVOKE ALL ON FUNCTION trading_apply_actions(date), trading_apply_actions_of(date, integer)
    FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_app') THEN
        GRANT EXECUTE ON FUNCTION trading_apply_actions(date) TO trading_app;
    END IF;
END $$;

DROP FUNCTION IF EXISTS trading_apply_one_action(bigint, bigint, bigint, timestamptz);
DROP FUNCTION IF EXISTS trading_apply_action_set(bigint);
DROP FUNCTION IF EXISTS trading_action_applied(bigint, bigint, text, date);
DROP FUNCTION IF EXISTS trading_action_blocked(bigint, bigint, bigint, text, timestamptz);
DROP FUNCTION IF EXISTS trading_may_hold(bigint, bigint, numeric, timestamptz);
DROP FUNCTION IF EXISTS trading_position_at(bigint, bigint, timestamptz, numeric);
DROP FUNCTION IF EXISTS trading_entry_after(bigint, bigint, timestamptz, integer);
DROP FUNCTION IF EXISTS trading_traded_since(bigint, bigint, timestamptz);

--
-- Raw SQL operation
--
-- Version 0013 of the books (0007): they follow corporate actions (trading/sql/actions/0013.sql,
-- read by the same migration). An action's entry takes the next slot of its position's
-- sequence, so an execution booked after it starts from the position the entry left, and a bust
-- or correction replays through the entries; an execution dated before the ex moment of an
-- entry applied to its position (or a bust or correction of one) is refused; the cash kinds
-- of actions (dividend, in_lieu, delisting) are written by the books only, like trade and fee.

-- The cash an action books is the books' too, like an execution's.
CREATE OR REPLACE FUNCTION trading_cash_from_executions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IN ('trade', 'fee') AND NOT trading_books_writing(TG_RELID) THEN
        PERFORM trading_refuse(format(
            'cash entry of kind %s: written by executions only', NEW.kind),
            'cash_trade_entries_from_executions');
    END IF;
    IF NEW.kind IN ('dividend', 'in_lieu', 'delisting') AND NOT trading_books_writing(TG_RELID) THEN
        PERFORM trading_refuse(format(
            'cash entry of kind %s: written by corporate actions only (trading_apply_actions)',
            NEW.kind), 'cash_action_entries_from_actions');
    END IF;
    RETURN NEW;
END $$;

-- A bust or correction replays the position from scratch: its executions in force and its
-- entries, in the position's sequence. An entry's state after it is taken as recorded: what
-- came before it cannot change (execution_before_applied_action).
CREATE OR REPLACE FUNCTION trading_replay_position(
    p trading_position, superseded bigint, pending trading_execution, multiplier numeric
) RETURNS trading_position LANGUAGE plpgsql AS $$
DECLARE
    e record;
    step record;
BEGIN
    p.quantity := 0; p.average_cost := 0; p.realized_pnl := 0;
    FOR e IN
        SELECT false AS entry, x.position_sequence AS seq, x.quantity, x.price,
               NULL::numeric AS average_cost, NULL::numeric AS realized
        FROM trading_execution x
        WHERE x.account_id = p.account_id AND x.instrument_id = p.instrument_id
          AND x.kind <> 'bust' AND x.id <> superseded
          AND NOT EXISTS (SELECT 1 FROM trading_execution b WHERE b.supersedes_id = x.id)
        UNION ALL
        SELECT true, a.position_sequence, a.quantity_after, NULL, a.average_cost_after,
               a.realized_pnl
        FROM trading_actionentry a
        WHERE a.account_id = p.account_id AND a.instrument_id = p.instrument_id
        ORDER BY seq
    LOOP
        IF e.entry THEN
            p.quantity := e.quantity; p.average_cost := e.average_cost;
            p.realized_pnl := p.realized_pnl + e.realized;
            CONTINUE;
        END IF;
        SELECT * INTO step FROM trading_position_step(p.quantity, p.average_cost, e.quantity, e.price, multiplier);
        p.quantity := step.new_qty; p.average_cost := step.new_avg_cost;
        p.realized_pnl := p.realized_pnl + step.realized;
    END LOOP;
    IF pending.kind = 'correction' THEN
        SELECT * INTO step FROM trading_position_step(p.quantity, p.average_cost, pending.quantity,
                                      pending.price, multiplier);
        p.quantity := step.new_qty; p.average_cost := step.new_avg_cost;
        p.realized_pnl := p.realized_pnl + step.realized;
    END IF;
    RETURN p;
END $$;

-- An execution dated before the ex moment of an entry applied to its position (or a bust or
-- correction of one): the action was applied to the position without it, so it is refused.
CREATE OR REPLACE FUNCTION trading_refuse_before_applied_action(
    e trading_execution, original trading_execution
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    applied timestamptz;
BEGIN
    SELECT max(a.ex_at) INTO applied FROM trading_actionentry a
    WHERE a.account_id = e.account_id AND a.instrument_id = e.instrument_id;
    IF applied IS NULL THEN
        RETURN;
    END IF;
    IF e.executed_at < applied THEN
        PERFORM trading_refuse(format(
            'execution %s: dated %s, before %s, the ex moment of a corporate action applied to'
            ' its position already', e.exec_id, e.executed_at, applied),
            'execution_before_applied_action');
    END IF;
    IF original.executed_at < applied THEN
        PERFORM trading_refuse(format(
            'execution %s: a %s of execution %s, dated %s, before %s, the ex moment of a'
            ' corporate action applied to its position already', e.exec_id, e.kind,
            original.exec_id, original.executed_at, applied),
            'execution_before_applied_action');
    END IF;
END $$;

-- Version 0013 of the execution's trigger (trading/sql/books/0007.sql): the refusal above, and
-- the position's state after its latest entry when an entry came after its latest execution.
CREATE OR REPLACE FUNCTION trading_execution_books() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET qvp.books = 'writing' AS $$
DECLARE
    o trading_order;
    original trading_execution;
    existing trading_execution;
    p trading_position;
    latest trading_execution;
    step record;
    inst_multiplier numeric;
    filled numeric;
    fill_change numeric;
BEGIN
    -- The order first: it serialises everything done to it, duplicates included.
    SELECT * INTO o FROM trading_order WHERE id = NEW.order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'execution %: order % does not exist', NEW.exec_id, NEW.order_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'execution_order_exists';
    END IF;
    -- An exec id names an execution within its account: another account's is none of this
    -- one's business (and says nothing about it).
    SELECT * INTO existing FROM trading_execution
    WHERE exec_id = NEW.exec_id AND account_id = NEW.account_id;
    IF FOUND THEN
        -- Idempotent: the same execution again is booked once; a different one is refused.
        IF (existing.order_id, existing.quantity, existing.price, existing.fee, existing.kind,
            existing.executed_at, existing.supersedes_id)
           IS NOT DISTINCT FROM
           (NEW.order_id, NEW.quantity, NEW.price, NEW.fee, NEW.kind, NEW.executed_at,
            NEW.supersedes_id) THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'execution %: already booked with different terms', NEW.exec_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'execution_exec_id_unique_per_account';
    END IF;
    PERFORM trading_execution_sane(NEW);
    IF NEW.account_id <> o.account_id OR NEW.instrument_id <> o.instrument_id THEN
        PERFORM trading_refuse(format(
            'execution %s: account %s and instrument %s must be those of order %s (%s, %s)',
            NEW.exec_id, NEW.account_id, NEW.instrument_id, o.id, o.account_id,
            o.instrument_id), 'execution_matches_order');
    END IF;
    IF NEW.kind <> 'fill' THEN
        SELECT * INTO original FROM trading_execution WHERE id = NEW.supersedes_id FOR UPDATE;
        IF NOT FOUND OR original.order_id <> NEW.order_id OR original.kind = 'bust' THEN
            PERFORM trading_refuse(format(
                'execution %s: a %s must name an execution of order %s that is not a bust',
                NEW.exec_id, NEW.kind, o.id), 'execution_supersedes_same_order');
        END IF;
        IF EXISTS (SELECT 1 FROM trading_execution WHERE supersedes_id = original.id) THEN
            PERFORM trading_refuse(format(
                'execution %s: execution %s was already busted or corrected',
                NEW.exec_id, original.exec_id), 'execution_superseded_once');
        END IF;
    END IF;
    IF NEW.kind = 'bust' THEN
        IF (NEW.quantity, NEW.price, NEW.fee) <> (-original.quantity, original.price, -original.fee) THEN
            PERFORM trading_refuse(format(
                'execution %s: a bust mirrors execution %s (quantity %s, price %s, fee %s)',
                NEW.exec_id, original.exec_id, -original.quantity, original.price,
                -original.fee), 'execution_bust_mirrors_original');
        END IF;
        fill_change := -abs(original.quantity);
    ELSE
        IF NEW.side <> o.side THEN
            PERFORM trading_refuse(format(
                'execution %s: a %s of order %s, which is a %s order',
                NEW.exec_id, NEW.side, o.id, o.side), 'execution_side_matches_order');
        END IF;
        IF NEW.kind = 'fill' AND o.status IN ('cancelled', 'rejected', 'expired') THEN
            PERFORM trading_refuse(format(
                'execution %s: order %s is %s and takes no fills', NEW.exec_id, o.id, o.status),
                'execution_order_open');
        END IF;
        fill_change := abs(NEW.quantity) - coalesce(abs(original.quantity), 0);
    END IF;

    -- Where the order and the position stand: after the position's latest execution (earlier
    -- rows of this statement included), found by the index on the position's sequence, or
    -- after its latest corporate-action entry when one came after it (the position row then
    -- holds that state: trading_apply_actions writes it, never within this statement). The
    -- order and position rows themselves are written once per statement, by
    -- trading_settle_executions.
    p := trading_position_for_update(NEW.account_id, NEW.instrument_id);
    PERFORM trading_refuse_before_applied_action(NEW, original);
    SELECT * INTO latest FROM trading_execution x
    WHERE x.account_id = NEW.account_id AND x.instrument_id = NEW.instrument_id
    ORDER BY x.position_sequence DESC LIMIT 1;
    IF p.last_sequence > coalesce(latest.position_sequence, 0) THEN
        latest.position_sequence := p.last_sequence;
        latest.position_quantity_after := p.quantity;
        latest.position_average_cost_after := p.average_cost;
        latest.position_realized_pnl_after := p.realized_pnl;
    END IF;
    SELECT x.order_filled_after INTO filled FROM trading_execution x
    WHERE x.order_id = o.id ORDER BY x.position_sequence DESC LIMIT 1;
    filled := coalesce(filled, 0);
    IF NEW.kind <> 'bust' AND filled + fill_change > o.quantity THEN
        PERFORM trading_refuse(format(
            'execution %s: fills %s of order %s beyond its quantity %s (%s filled already)',
            NEW.exec_id, abs(NEW.quantity), o.id, o.quantity, filled),
            'execution_within_order_quantity');
    END IF;
    NEW.order_filled_after := filled + fill_change;
    NEW.position_sequence := coalesce(latest.position_sequence, 0) + 1;

    SELECT i.multiplier INTO inst_multiplier FROM marketdata_instrument i
    WHERE i.id = NEW.instrument_id;
    IF NEW.kind = 'fill' THEN
        SELECT * INTO step FROM trading_position_step(
            coalesce(latest.position_quantity_after, 0),
            coalesce(latest.position_average_cost_after, 0), NEW.quantity, NEW.price,
            inst_multiplier);
        NEW.position_quantity_after := step.new_qty;
        NEW.position_average_cost_after := step.new_avg_cost;
        NEW.position_realized_pnl_after := coalesce(latest.position_realized_pnl_after, 0)
                                           + step.realized;
    ELSE
        p := trading_replay_position(p, original.id, NEW, inst_multiplier);
        NEW.position_quantity_after := p.quantity;
        NEW.position_average_cost_after := p.average_cost;
        NEW.position_realized_pnl_after := p.realized_pnl;
    END IF;
    RETURN NEW;
END $$;

DROP FUNCTION IF EXISTS trading_replay_through(bigint, bigint, bigint, timestamptz, numeric);
DROP FUNCTION IF EXISTS trading_placed_at(bigint);

COMMIT;
