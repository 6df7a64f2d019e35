BEGIN;
--
-- Raw SQL operation
--
-- When an execution or a cash entry was booked is the database's to say, never the writer's:
-- reads as known at a moment (risk runs, snapshots: trading/snapshots.py, risk/sql/functions)
-- take created_at for the booking time, so a row backdated by the application's role would
-- read as known before it was, and a stored run repeated with its knowledge time would change.
-- A row trigger sets it to the statement's time on every insert, whoever inserts (the owner can
-- disable triggers; the audit trail sees what it writes then).

CREATE OR REPLACE FUNCTION trading_booked_now() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.created_at := statement_timestamp();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER trading_execution_booked_now BEFORE INSERT ON trading_execution
    FOR EACH ROW EXECUTE FUNCTION trading_booked_now();
CREATE OR REPLACE TRIGGER trading_cashentry_booked_now BEFORE INSERT ON trading_cashentry
    FOR EACH ROW EXECUTE FUNCTION trading_booked_now();

COMMIT;
