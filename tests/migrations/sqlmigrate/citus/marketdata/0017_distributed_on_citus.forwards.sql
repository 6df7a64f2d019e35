BEGIN;
--
-- On Citus, multi-shard commands over one connection per worker
--
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET citus.multi_shard_modify_mode = ''sequential''', current_database()); END $$;
SET citus.multi_shard_modify_mode = 'sequential';
--
-- On Citus, Instrument's keys as a distributed table
--
CREATE TABLE "marketdata_instrument_key" ("id" bigint PRIMARY KEY);
SELECT create_distributed_table('marketdata_instrument_key', 'id', shard_count => QVP_CITUS_SHARD_COUNT, colocate_with => 'none');
LOCK TABLE "marketdata_instrument" IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO "marketdata_instrument_key" SELECT "id" FROM "marketdata_instrument";

CREATE OR REPLACE FUNCTION qvp_mirror_key() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    keys text := left(TG_TABLE_NAME, 59) || '_key';
    old_key bigint;
    new_key bigint;
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' THEN
        RAISE EXCEPTION 'qvp_mirror_key mirrors the tables of public only, not %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    old_key := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) ->> TG_ARGV[0] END;
    new_key := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) ->> TG_ARGV[0] END;
    IF old_key IS NOT DISTINCT FROM new_key THEN
        RETURN NULL;
    END IF;
    IF old_key IS NOT NULL THEN  -- refused by the distributed tables' keys while referred to
        EXECUTE format('DELETE FROM public.%I WHERE %I = $1', keys, TG_ARGV[0]) USING old_key;
    END IF;
    IF new_key IS NOT NULL THEN
        -- A key may outlive its row: TRUNCATE (the owner's alone) is not mirrored, as one
        -- node's reference checks do not refuse it (qvp_site/db/references.py).
        EXECUTE format('INSERT INTO public.%I (%I) VALUES ($1) ON CONFLICT DO NOTHING',
                       keys, TG_ARGV[0]) USING new_key;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION qvp_mirror_key() FROM PUBLIC;
CREATE TRIGGER "marketdata_instrument_mirrored" AFTER INSERT OR DELETE OR UPDATE OF "id" ON "marketdata_instrument" FOR EACH ROW EXECUTE FUNCTION qvp_mirror_key('id');
--
-- On Citus, distribute MinuteBar by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_ins" ON "marketdata_minutebar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_upd" ON "marketdata_minutebar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_minutebar_instrument_id_protect" ON "marketdata_instrument";

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
             WHERE tgrelid = '"marketdata_minutebar"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_minutebar', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_minutebar"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "marketdata_minutebar_default";
ALTER TABLE "marketdata_minutebar" DROP CONSTRAINT "marketdata_minutebar_pkey", ADD CONSTRAINT "marketdata_minutebar_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('marketdata_minutebar', 'instrument_id', colocate_with => 'marketdata_instrument_key');
ALTER TABLE "marketdata_minutebar" ADD CONSTRAINT "marketdata_minutebar_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, distribute DailyBar by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_ins" ON "marketdata_dailybar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_upd" ON "marketdata_dailybar";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_dailybar_instrument_id_protect" ON "marketdata_instrument";

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
             WHERE tgrelid = '"marketdata_dailybar"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_dailybar', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_dailybar"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "marketdata_dailybar_default";
ALTER TABLE "marketdata_dailybar" DROP CONSTRAINT "marketdata_dailybar_pkey", ADD CONSTRAINT "marketdata_dailybar_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('marketdata_dailybar', 'instrument_id', colocate_with => 'marketdata_minutebar');
ALTER TABLE "marketdata_dailybar" ADD CONSTRAINT "marketdata_dailybar_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, distribute Tick by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_ins" ON "marketdata_tick";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_upd" ON "marketdata_tick";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_tick_instrument_id_protect" ON "marketdata_instrument";

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
             WHERE tgrelid = '"marketdata_tick"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_tick', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_tick"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "marketdata_tick_default";
ALTER TABLE "marketdata_tick" DROP CONSTRAINT "marketdata_tick_pkey", ADD CONSTRAINT "marketdata_tick_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('marketdata_tick', 'instrument_id', colocate_with => 'marketdata_minutebar');
ALTER TABLE "marketdata_tick" ADD CONSTRAINT "marketdata_tick_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, distribute OptionQuote by underlying
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_ins" ON "marketdata_optionquote";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_upd" ON "marketdata_optionquote";
DROP TRIGGER IF EXISTS "qvp_ref_marketdata_optionquote_underlying_id_protect" ON "marketdata_instrument";

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
             WHERE tgrelid = '"marketdata_optionquote"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_optionquote', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_optionquote"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "marketdata_optionquote_default";
ALTER TABLE "marketdata_optionquote" DROP CONSTRAINT "marketdata_optionquote_pkey", ADD CONSTRAINT "marketdata_optionquote_pkey" PRIMARY KEY ("id", "ts", "underlying_id");
SELECT create_distributed_table('marketdata_optionquote', 'underlying_id', colocate_with => 'marketdata_minutebar');
ALTER TABLE "marketdata_optionquote" ADD CONSTRAINT "marketdata_optionquote_underlying_id_fkey" FOREIGN KEY ("underlying_id") REFERENCES "marketdata_instrument_key" ("id");
COMMIT;
