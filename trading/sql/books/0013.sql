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
