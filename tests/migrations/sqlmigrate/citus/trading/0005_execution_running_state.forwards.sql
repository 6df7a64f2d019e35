BEGIN;
--
-- Add field order_filled_after to execution
--
ALTER TABLE "trading_execution" ADD COLUMN "order_filled_after" numeric(20, 8) NULL;
--
-- Add field position_average_cost_after to execution
--
ALTER TABLE "trading_execution" ADD COLUMN "position_average_cost_after" numeric(28, 12) NULL;
--
-- Add field position_quantity_after to execution
--
ALTER TABLE "trading_execution" ADD COLUMN "position_quantity_after" numeric(20, 8) NULL;
--
-- Add field position_realized_pnl_after to execution
--
ALTER TABLE "trading_execution" ADD COLUMN "position_realized_pnl_after" numeric(24, 8) NULL;
--
-- Create index execution_order_latest_idx on field(s) order, position_sequence of model execution
--
CREATE INDEX "execution_order_latest_idx" ON "trading_execution" ("order_id", "position_sequence");
--
-- Raw SQL operation
--
-- The database keeps the books: each execution moves its order, its position and the cash
-- ledger in the same statement, and refuses what breaks a rule, whichever door it came through.
--
-- The execution's BEFORE INSERT trigger checks it and computes, row by row, where its order
-- and its position stand after it (kept on the execution itself: order_filled_after,
-- position_*_after, position_sequence), from the position's latest execution. A statement-level
-- trigger then writes each touched order and position once and books the cash, set-based.
-- The trigger functions run as the owner (SECURITY DEFINER): positions and the execution-driven
-- columns are written by them only, and pg_trigger_depth() tells their own writes from anyone
-- else's.

-- One step of a position: the math of fills, used by the trigger and by the replay of a bust.
-- Average cost is weighted on increases, unchanged on reductions, reset when the position
-- flips sign and zero when it is flat; realized P&L arises on reductions.
CREATE OR REPLACE FUNCTION trading_position_step(
    qty numeric, avg_cost numeric, fill_qty numeric, fill_price numeric, multiplier numeric,
    OUT new_qty numeric, OUT new_avg_cost numeric, OUT realized numeric
) LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    closed numeric;
BEGIN
    new_qty := qty + fill_qty;
    IF qty = 0 OR sign(qty) = sign(fill_qty) THEN
        new_avg_cost := round((abs(qty) * avg_cost + abs(fill_qty) * fill_price) / abs(new_qty), 12);
        realized := 0;
        RETURN;
    END IF;
    closed := least(abs(fill_qty), abs(qty));
    realized := round(closed * (fill_price - avg_cost) * sign(qty) * multiplier, 8);
    new_avg_cost := CASE WHEN new_qty = 0 THEN 0
                         WHEN sign(new_qty) = sign(qty) THEN avg_cost
                         ELSE fill_price END;
END $$;

CREATE OR REPLACE FUNCTION trading_refuse(message text, rule text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', message USING ERRCODE = 'check_violation', CONSTRAINT = rule;
END $$;

-- Orders: terms never change, filled quantity only through executions, status only along
-- legal transitions (fills and busts set new / partially filled / filled themselves).
CREATE OR REPLACE FUNCTION trading_order_lifecycle() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'new' OR NEW.filled_quantity <> 0 THEN
            PERFORM trading_refuse(format(
                'order %s: a new order starts as new with nothing filled (not %s, %s filled)',
                NEW.client_order_id, NEW.status, NEW.filled_quantity), 'order_starts_new');
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM trading_refuse(format(
            'order %s: orders are never deleted; cancel it instead', OLD.id), 'order_kept');
    END IF;
    IF (NEW.account_id, NEW.instrument_id, NEW.client_order_id, NEW.side, NEW.order_type,
        NEW.quantity, NEW.limit_price, NEW.stop_price, NEW.time_in_force, NEW.created_at)
       IS DISTINCT FROM
       (OLD.account_id, OLD.instrument_id, OLD.client_order_id, OLD.side, OLD.order_type,
        OLD.quantity, OLD.limit_price, OLD.stop_price, OLD.time_in_force, OLD.created_at) THEN
        PERFORM trading_refuse(format(
            'order %s: its terms cannot change; cancel it and send a new one', OLD.id),
            'order_terms_fixed');
    END IF;
    IF pg_trigger_depth() > 1 THEN  -- an execution's trigger: fills and busts
        NEW.updated_at := statement_timestamp();
        RETURN NEW;
    END IF;
    IF NEW.filled_quantity <> OLD.filled_quantity THEN
        PERFORM trading_refuse(format(
            'order %s: filled quantity is kept by its executions', OLD.id),
            'order_filled_by_executions');
    END IF;
    IF NEW.status <> OLD.status AND NOT (
        (OLD.status = 'new' AND NEW.status IN ('cancelled', 'rejected', 'expired'))
        OR (OLD.status = 'partially_filled' AND NEW.status IN ('cancelled', 'expired'))
    ) THEN
        PERFORM trading_refuse(format(
            'order %s: cannot go from %s to %s', OLD.id, OLD.status, NEW.status),
            'order_legal_transition');
    END IF;
    NEW.updated_at := statement_timestamp();
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION trading_refuse_direct_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        PERFORM trading_refuse(format(
            '%s: %s is refused; %s', TG_TABLE_NAME, lower(TG_OP), TG_ARGV[0]), TG_ARGV[1]);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE OR REPLACE FUNCTION trading_refuse_edit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM trading_refuse(format(
        '%s %s: %s is refused; %s', TG_TABLE_NAME, OLD.id, lower(TG_OP), TG_ARGV[0]),
        TG_ARGV[1]);
    RETURN NULL;
END $$;

-- The same checks as the execution's CHECK constraints, made first so that a bad row is
-- refused by its rule's name before the books are touched.
CREATE OR REPLACE FUNCTION trading_execution_sane(e trading_execution) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF e.quantity IS NULL OR e.quantity = 0 THEN
        PERFORM trading_refuse(format('execution %s: quantity must not be zero', e.exec_id),
                               'execution_quantity_not_zero');
    END IF;
    IF NOT ((e.side = 'buy' AND e.quantity > 0) OR (e.side = 'sell' AND e.quantity < 0)) THEN
        PERFORM trading_refuse(format(
            'execution %s: side %s does not match the sign of quantity %s (buys are positive)',
            e.exec_id, e.side, e.quantity), 'execution_side_matches_sign');
    END IF;
    IF e.price IS NULL OR e.price <= 0 THEN
        PERFORM trading_refuse(format('execution %s: price must be positive (got %s)',
                                      e.exec_id, e.price), 'execution_price_positive');
    END IF;
END $$;

CREATE OR REPLACE FUNCTION trading_position_for_update(account bigint, instrument bigint)
RETURNS trading_position LANGUAGE plpgsql AS $$
DECLARE
    p trading_position;
BEGIN
    -- Most executions find their position; the first one of a pair makes it.
    SELECT * INTO p FROM trading_position
    WHERE account_id = account AND instrument_id = instrument FOR UPDATE;
    IF FOUND THEN
        RETURN p;
    END IF;
    INSERT INTO trading_position (account_id, instrument_id, quantity, average_cost,
                                  realized_pnl, last_sequence, updated_at)
    VALUES (account, instrument, 0, 0, 0, 0, statement_timestamp())
    ON CONFLICT (account_id, instrument_id) DO NOTHING;
    SELECT * INTO p FROM trading_position
    WHERE account_id = account AND instrument_id = instrument FOR UPDATE;
    RETURN p;
END $$;

-- The position from scratch: every execution still in force, in the sequence applied, then
-- ``pending`` (the bust or correction being written). Used when a bust or correction changes
-- the past; ordinary fills take one step.
CREATE OR REPLACE FUNCTION trading_replay_position(
    p trading_position, superseded bigint, pending trading_execution, multiplier numeric
) RETURNS trading_position LANGUAGE plpgsql AS $$
DECLARE
    e record;
    step record;
BEGIN
    p.quantity := 0; p.average_cost := 0; p.realized_pnl := 0;
    FOR e IN
        SELECT x.quantity, x.price FROM trading_execution x
        WHERE x.account_id = p.account_id AND x.instrument_id = p.instrument_id
          AND x.kind <> 'bust' AND x.id <> superseded
          AND NOT EXISTS (SELECT 1 FROM trading_execution b WHERE b.supersedes_id = x.id)
        ORDER BY x.position_sequence
    LOOP
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

CREATE OR REPLACE FUNCTION trading_execution_books() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
    SELECT * INTO existing FROM trading_execution WHERE exec_id = NEW.exec_id;
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
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'trading_execution_exec_id_key';
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
    -- rows of this statement included), found by the index on the position's sequence. The
    -- order and position rows themselves are written once per statement, by
    -- trading_settle_executions: a row updated for every execution of a bulk insert would make
    -- each later lookup of it walk all its versions.
    p := trading_position_for_update(NEW.account_id, NEW.instrument_id);
    SELECT * INTO latest FROM trading_execution x
    WHERE x.account_id = NEW.account_id AND x.instrument_id = NEW.instrument_id
    ORDER BY x.position_sequence DESC LIMIT 1;
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

-- Once per statement: each touched order and position takes the state after its latest
-- execution; the cash ledger gets each execution's cash side and fee, and the reversal of what
-- a bust or correction cancels (in sequence, so that one naming an execution of the same
-- statement finds its cash).
CREATE OR REPLACE FUNCTION trading_settle_executions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    e record;
BEGIN
    UPDATE trading_order o SET
        filled_quantity = last.order_filled_after,
        status = CASE WHEN o.status NOT IN ('new', 'partially_filled', 'filled') THEN o.status
                      WHEN last.order_filled_after = o.quantity THEN 'filled'
                      WHEN last.order_filled_after > 0 THEN 'partially_filled'
                      ELSE 'new' END
    FROM (SELECT DISTINCT ON (order_id) order_id, order_filled_after FROM booked
          ORDER BY order_id, position_sequence DESC) AS last
    WHERE o.id = last.order_id;

    UPDATE trading_position p SET
        quantity = last.position_quantity_after,
        average_cost = last.position_average_cost_after,
        realized_pnl = last.position_realized_pnl_after,
        last_sequence = last.position_sequence,
        last_execution_at = greatest(p.last_execution_at, last.latest_at),
        updated_at = statement_timestamp()
    FROM (SELECT DISTINCT ON (account_id, instrument_id) account_id, instrument_id,
                 position_quantity_after, position_average_cost_after,
                 position_realized_pnl_after, position_sequence,
                 max(executed_at) OVER (PARTITION BY account_id, instrument_id) AS latest_at
          FROM booked ORDER BY account_id, instrument_id, position_sequence DESC) AS last
    WHERE p.account_id = last.account_id AND p.instrument_id = last.instrument_id;

    INSERT INTO trading_cashentry (account_id, kind, amount, currency, execution_id, entry_at,
                                   note, created_at)
    SELECT b.account_id, entry.kind, entry.amount, i.currency, b.id, b.executed_at, '',
           statement_timestamp()
    FROM booked b
    JOIN marketdata_instrument i ON i.id = b.instrument_id
    CROSS JOIN LATERAL (VALUES ('trade', round(-b.quantity * b.price * i.multiplier, 8)),
                               ('fee', -b.fee)) AS entry (kind, amount)
    WHERE b.kind <> 'bust' AND entry.amount <> 0
    ORDER BY b.position_sequence;

    FOR e IN SELECT b.id, b.supersedes_id, b.executed_at FROM booked b
             WHERE b.kind <> 'fill' ORDER BY b.account_id, b.instrument_id, b.position_sequence
    LOOP
        INSERT INTO trading_cashentry (account_id, kind, amount, currency, execution_id,
                                       entry_at, note, created_at)
        SELECT c.account_id, c.kind, -c.amount, c.currency, e.id, e.executed_at,
               format('reverses execution %s', x.exec_id), statement_timestamp()
        FROM trading_cashentry c JOIN trading_execution x ON x.id = c.execution_id
        WHERE c.execution_id = e.supersedes_id;
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER trading_order_lifecycle BEFORE INSERT OR UPDATE OR DELETE
    ON trading_order FOR EACH ROW EXECUTE FUNCTION trading_order_lifecycle();
CREATE OR REPLACE TRIGGER trading_execution_books BEFORE INSERT
    ON trading_execution FOR EACH ROW EXECUTE FUNCTION trading_execution_books();
CREATE OR REPLACE TRIGGER trading_settle_executions AFTER INSERT ON trading_execution
    REFERENCING NEW TABLE AS booked
    FOR EACH STATEMENT EXECUTE FUNCTION trading_settle_executions();
CREATE OR REPLACE TRIGGER trading_execution_never_edited BEFORE UPDATE OR DELETE
    ON trading_execution FOR EACH ROW EXECUTE FUNCTION trading_refuse_edit(
        'executions are never edited: bust or correct them with a new execution',
        'execution_never_edited');
CREATE OR REPLACE TRIGGER trading_position_kept_by_executions
    BEFORE INSERT OR UPDATE OR DELETE ON trading_position
    FOR EACH ROW EXECUTE FUNCTION trading_refuse_direct_write(
        'positions are kept by their executions', 'position_kept_by_executions');
CREATE OR REPLACE TRIGGER trading_cash_never_edited BEFORE UPDATE OR DELETE
    ON trading_cashentry FOR EACH ROW EXECUTE FUNCTION trading_refuse_edit(
        'cash entries are never edited: add an adjustment', 'cash_never_edited');
CREATE OR REPLACE FUNCTION trading_cash_from_executions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IN ('trade', 'fee') AND pg_trigger_depth() < 2 THEN
        PERFORM trading_refuse(format(
            'cash entry of kind %s: written by executions only', NEW.kind),
            'cash_trade_entries_from_executions');
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER trading_cash_from_executions BEFORE INSERT
    ON trading_cashentry FOR EACH ROW EXECUTE FUNCTION trading_cash_from_executions();
REVOKE ALL ON FUNCTION trading_execution_books(), trading_settle_executions() FROM PUBLIC;

COMMIT;
