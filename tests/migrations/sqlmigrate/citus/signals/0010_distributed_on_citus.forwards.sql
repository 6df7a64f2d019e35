BEGIN;
--
-- On Citus, Agent's keys as a reference table
--
CREATE TABLE "signals_agent_key" ("id" bigint PRIMARY KEY);
SELECT create_reference_table('signals_agent_key');
LOCK TABLE "signals_agent" IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO "signals_agent_key" SELECT "id" FROM "signals_agent";

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
CREATE TRIGGER "signals_agent_mirrored" AFTER INSERT OR DELETE OR UPDATE OF "id" ON "signals_agent" FOR EACH ROW EXECUTE FUNCTION qvp_mirror_key('id');
--
-- On Citus, Signal's foreign keys to local tables set aside
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"signals_signal"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('signals_signal', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"signals_signal"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"signals_signal"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
--
-- On Citus, distribute Signal by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_signals_signal_instrument_id_ins" ON "signals_signal";
DROP TRIGGER IF EXISTS "qvp_ref_signals_signal_instrument_id_upd" ON "signals_signal";
DROP TRIGGER IF EXISTS "qvp_ref_signals_signal_instrument_id_protect" ON "marketdata_instrument";

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
             WHERE tgrelid = '"signals_signal"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('signals_signal', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"signals_signal"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "signals_signal_default";
ALTER TABLE "signals_signal" DROP CONSTRAINT "signals_signal_pkey", ADD CONSTRAINT "signals_signal_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('signals_signal', 'instrument_id', colocate_with => 'marketdata_instrument_key');
ALTER TABLE "signals_signal" ADD CONSTRAINT "signals_signal_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, Signal.agent refers to its model's keys
--
ALTER TABLE "signals_signal" ADD CONSTRAINT "signals_signal_agent_id_fkey" FOREIGN KEY ("agent_id") REFERENCES "signals_agent_key" ("id");
--
-- On Citus, FusedSignal's foreign keys to local tables set aside
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"signals_fusedsignal"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('signals_fusedsignal', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"signals_fusedsignal"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"signals_fusedsignal"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
--
-- On Citus, distribute FusedSignal by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_signals_fusedsignal_instrument_id_ins" ON "signals_fusedsignal";
DROP TRIGGER IF EXISTS "qvp_ref_signals_fusedsignal_instrument_id_upd" ON "signals_fusedsignal";
DROP TRIGGER IF EXISTS "qvp_ref_signals_fusedsignal_instrument_id_protect" ON "marketdata_instrument";

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
             WHERE tgrelid = '"signals_fusedsignal"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('signals_fusedsignal', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"signals_fusedsignal"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "signals_fusedsignal_default";
ALTER TABLE "signals_fusedsignal" DROP CONSTRAINT "signals_fusedsignal_pkey", ADD CONSTRAINT "signals_fusedsignal_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('signals_fusedsignal', 'instrument_id', colocate_with => 'marketdata_instrument_key');
ALTER TABLE "signals_fusedsignal" ADD CONSTRAINT "signals_fusedsignal_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, SocialSentiment's foreign keys to local tables set aside
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"signals_socialsentiment"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('signals_socialsentiment', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"signals_socialsentiment"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"signals_socialsentiment"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
--
-- On Citus, distribute SocialSentiment by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_signals_socialsentiment_instrument_id_ins" ON "signals_socialsentiment";
DROP TRIGGER IF EXISTS "qvp_ref_signals_socialsentiment_instrument_id_upd" ON "signals_socialsentiment";
DROP TRIGGER IF EXISTS "qvp_ref_signals_socialsentiment_instrument_id_protect" ON "marketdata_instrument";

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
             WHERE tgrelid = '"signals_socialsentiment"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('signals_socialsentiment', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"signals_socialsentiment"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "signals_socialsentiment_default";
ALTER TABLE "signals_socialsentiment" DROP CONSTRAINT "signals_socialsentiment_pkey", ADD CONSTRAINT "signals_socialsentiment_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('signals_socialsentiment', 'instrument_id', colocate_with => 'marketdata_instrument_key');
ALTER TABLE "signals_socialsentiment" ADD CONSTRAINT "signals_socialsentiment_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, signals_signal_outcomes(text, integer, timestamptz, timestamptz) defined for Citus
--

CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
);
INSERT INTO qvp_citus_set_aside (table_name, object_name, definition) SELECT '(functions)', f::text, pg_get_functiondef(f) FROM (SELECT 'signals_signal_outcomes(text, integer, timestamptz, timestamptz)'::regprocedure AS f) AS kept ON CONFLICT DO NOTHING;
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

COMMIT;
