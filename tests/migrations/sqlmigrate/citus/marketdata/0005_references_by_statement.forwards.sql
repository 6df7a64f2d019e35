BEGIN;
--
-- Alter field instrument on dailybar
--
SET CONSTRAINTS "marketdata_dailybar_instrument_id_fkey" IMMEDIATE; ALTER TABLE "marketdata_dailybar" DROP CONSTRAINT "marketdata_dailybar_instrument_id_fkey";
--
-- Alter field instrument on minutebar
--
SET CONSTRAINTS "marketdata_minutebar_instrument_id_fkey" IMMEDIATE; ALTER TABLE "marketdata_minutebar" DROP CONSTRAINT "marketdata_minutebar_instrument_id_fkey";
--
-- Alter field underlying on optionquote
--
SET CONSTRAINTS "marketdata_optionquote_underlying_id_fkey" IMMEDIATE; ALTER TABLE "marketdata_optionquote" DROP CONSTRAINT "marketdata_optionquote_underlying_id_fkey";
--
-- Alter field instrument on tick
--
SET CONSTRAINTS "marketdata_tick_instrument_id_fkey" IMMEDIATE; ALTER TABLE "marketdata_tick" DROP CONSTRAINT "marketdata_tick_instrument_id_fkey";
--
-- Raw SQL operation
--
-- The functions behind EnforceReference (qvp_site/db/references.py): a time-series table's
-- reference to an ordinary table checked once per statement, and the parent's rows protected
-- while referenced. Installed by marketdata 0005, before its EnforceReference operations.

CREATE OR REPLACE FUNCTION qvp_check_reference() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
-- TG_ARGV: child column, parent table, parent column, constraint name.
DECLARE
    missing text;
BEGIN
    EXECUTE format(
        'WITH wanted AS (SELECT DISTINCT %1$I AS key FROM qvp_new_rows WHERE %1$I IS NOT NULL),'
        ' found AS (SELECT p.%3$I AS key FROM %2$I p WHERE p.%3$I IN (SELECT key FROM wanted)'
        '           FOR KEY SHARE OF p)'
        ' SELECT min(key)::text FROM wanted WHERE key NOT IN (SELECT key FROM found)',
        TG_ARGV[0], TG_ARGV[1], TG_ARGV[2])
    INTO missing;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
            TG_TABLE_NAME, TG_ARGV[3]
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[3],
                  TABLE = TG_TABLE_NAME,
                  DETAIL = format('Key (%s)=(%s) is not present in table "%s".',
                                  TG_ARGV[0], missing, TG_ARGV[1]);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION qvp_protect_referenced() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
-- TG_ARGV: child table, child column, parent column, constraint name.
DECLARE
    old_key text := to_jsonb(OLD) ->> TG_ARGV[2];
    referenced boolean;
BEGIN
    IF TG_OP = 'UPDATE' AND old_key IS NOT DISTINCT FROM (to_jsonb(NEW) ->> TG_ARGV[2]) THEN
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I c WHERE c.%I = ($1).%I)',
                   TG_ARGV[0], TG_ARGV[1], TG_ARGV[2])
    INTO referenced USING OLD;
    IF referenced THEN
        RAISE EXCEPTION
            'update or delete on table "%" violates foreign key constraint "%" on table "%"',
            TG_TABLE_NAME, TG_ARGV[3], TG_ARGV[0]
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[3],
                  TABLE = TG_TABLE_NAME,
                  DETAIL = format('Key (%s)=(%s) is still referenced from table "%s".',
                                  TG_ARGV[2], old_key, TG_ARGV[0]);
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;

--
-- Check MinuteBar.instrument once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_ins" ON "marketdata_minutebar";
CREATE TRIGGER "qvp_ref_marketdata_minutebar_instrument_id_ins" AFTER INSERT ON "marketdata_minutebar" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('instrument_id', 'marketdata_instrument', 'id', 'marketdata_minutebar_instrument_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_upd" ON "marketdata_minutebar";
CREATE TRIGGER "qvp_ref_marketdata_minutebar_instrument_id_upd" AFTER UPDATE ON "marketdata_minutebar" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('instrument_id', 'marketdata_instrument', 'id', 'marketdata_minutebar_instrument_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_protect" ON "marketdata_instrument";
CREATE TRIGGER "qvp_ref_marketdata_minutebar_instrument_id_protect" BEFORE DELETE OR UPDATE OF "id" ON "marketdata_instrument" FOR EACH ROW EXECUTE FUNCTION qvp_protect_referenced('marketdata_minutebar', 'instrument_id', 'id', 'marketdata_minutebar_instrument_id_fkey');
--
-- Check DailyBar.instrument once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_ins" ON "marketdata_dailybar";
CREATE TRIGGER "qvp_ref_marketdata_dailybar_instrument_id_ins" AFTER INSERT ON "marketdata_dailybar" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('instrument_id', 'marketdata_instrument', 'id', 'marketdata_dailybar_instrument_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_upd" ON "marketdata_dailybar";
CREATE TRIGGER "qvp_ref_marketdata_dailybar_instrument_id_upd" AFTER UPDATE ON "marketdata_dailybar" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('instrument_id', 'marketdata_instrument', 'id', 'marketdata_dailybar_instrument_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_protect" ON "marketdata_instrument";
CREATE TRIGGER "qvp_ref_marketdata_dailybar_instrument_id_protect" BEFORE DELETE OR UPDATE OF "id" ON "marketdata_instrument" FOR EACH ROW EXECUTE FUNCTION qvp_protect_referenced('marketdata_dailybar', 'instrument_id', 'id', 'marketdata_dailybar_instrument_id_fkey');
--
-- Check Tick.instrument once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_ins" ON "marketdata_tick";
CREATE TRIGGER "qvp_ref_marketdata_tick_instrument_id_ins" AFTER INSERT ON "marketdata_tick" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('instrument_id', 'marketdata_instrument', 'id', 'marketdata_tick_instrument_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_upd" ON "marketdata_tick";
CREATE TRIGGER "qvp_ref_marketdata_tick_instrument_id_upd" AFTER UPDATE ON "marketdata_tick" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('instrument_id', 'marketdata_instrument', 'id', 'marketdata_tick_instrument_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_protect" ON "marketdata_instrument";
CREATE TRIGGER "qvp_ref_marketdata_tick_instrument_id_protect" BEFORE DELETE OR UPDATE OF "id" ON "marketdata_instrument" FOR EACH ROW EXECUTE FUNCTION qvp_protect_referenced('marketdata_tick', 'instrument_id', 'id', 'marketdata_tick_instrument_id_fkey');
--
-- Check OptionQuote.underlying once per statement
--
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_ins" ON "marketdata_optionquote";
CREATE TRIGGER "qvp_ref_marketdata_optionquote_underlying_id_ins" AFTER INSERT ON "marketdata_optionquote" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('underlying_id', 'marketdata_instrument', 'id', 'marketdata_optionquote_underlying_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_upd" ON "marketdata_optionquote";
CREATE TRIGGER "qvp_ref_marketdata_optionquote_underlying_id_upd" AFTER UPDATE ON "marketdata_optionquote" REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT EXECUTE FUNCTION qvp_check_reference('underlying_id', 'marketdata_instrument', 'id', 'marketdata_optionquote_underlying_id_fkey');
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_protect" ON "marketdata_instrument";
CREATE TRIGGER "qvp_ref_marketdata_optionquote_underlying_id_protect" BEFORE DELETE OR UPDATE OF "id" ON "marketdata_instrument" FOR EACH ROW EXECUTE FUNCTION qvp_protect_referenced('marketdata_optionquote', 'underlying_id', 'id', 'marketdata_optionquote_underlying_id_fkey');
COMMIT;
