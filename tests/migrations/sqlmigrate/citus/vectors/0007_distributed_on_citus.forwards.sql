BEGIN;
--
-- On Citus, FeatureSet's keys as a reference table
--
CREATE TABLE "vectors_featureset_key" ("id" bigint PRIMARY KEY);
SELECT create_reference_table('vectors_featureset_key');
LOCK TABLE "vectors_featureset" IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO "vectors_featureset_key" SELECT "id" FROM "vectors_featureset";

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
CREATE TRIGGER "vectors_featureset_mirrored" AFTER INSERT OR DELETE OR UPDATE OF "id" ON "vectors_featureset" FOR EACH ROW EXECUTE FUNCTION qvp_mirror_key('id');
--
-- On Citus, FeatureEmbedding's foreign keys to local tables set aside
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
             WHERE conrelid = '"vectors_featureembedding"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('vectors_featureembedding', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"vectors_featureembedding"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"vectors_featureembedding"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
--
-- On Citus, distribute FeatureEmbedding by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_vectors_featureembedding_instrument_id_ins" ON "vectors_featureembedding";
DROP TRIGGER IF EXISTS "qvp_ref_vectors_featureembedding_instrument_id_upd" ON "vectors_featureembedding";
DROP TRIGGER IF EXISTS "qvp_ref_vectors_featureembedding_instrument_id_protect" ON "marketdata_instrument";

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
             WHERE tgrelid = '"vectors_featureembedding"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('vectors_featureembedding', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"vectors_featureembedding"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "vectors_featureembedding_default";
ALTER TABLE "vectors_featureembedding" DROP CONSTRAINT "vectors_featureembedding_pkey", ADD CONSTRAINT "vectors_featureembedding_pkey" PRIMARY KEY ("id", "ts", "instrument_id");
SELECT create_distributed_table('vectors_featureembedding', 'instrument_id', colocate_with => 'marketdata_instrument_key');
ALTER TABLE "vectors_featureembedding" ADD CONSTRAINT "vectors_featureembedding_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, FeatureEmbedding.feature_set refers to its model's keys
--
ALTER TABLE "vectors_featureembedding" ADD CONSTRAINT "vectors_featureembedding_feature_set_id_fkey" FOREIGN KEY ("feature_set_id") REFERENCES "vectors_featureset_key" ("id");
--
-- On Citus, VolatilityRegime's foreign keys to local tables set aside
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
             WHERE conrelid = '"vectors_volatilityregime"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('vectors_volatilityregime', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"vectors_volatilityregime"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"vectors_volatilityregime"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
--
-- On Citus, distribute VolatilityRegime by instrument
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
DROP TRIGGER IF EXISTS "qvp_ref_vectors_volatilityregime_instrument_id_ins" ON "vectors_volatilityregime";
DROP TRIGGER IF EXISTS "qvp_ref_vectors_volatilityregime_instrument_id_upd" ON "vectors_volatilityregime";
DROP TRIGGER IF EXISTS "qvp_ref_vectors_volatilityregime_instrument_id_protect" ON "marketdata_instrument";

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
             WHERE tgrelid = '"vectors_volatilityregime"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('vectors_volatilityregime', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"vectors_volatilityregime"'::regclass);
    END LOOP;
END
$qvp$;
DROP TABLE IF EXISTS "vectors_volatilityregime_default";
ALTER TABLE "vectors_volatilityregime" DROP CONSTRAINT "vectors_volatilityregime_pkey", ADD CONSTRAINT "vectors_volatilityregime_pkey" PRIMARY KEY ("id", "period_end", "instrument_id");
SELECT create_distributed_table('vectors_volatilityregime', 'instrument_id', colocate_with => 'marketdata_instrument_key');
ALTER TABLE "vectors_volatilityregime" ADD CONSTRAINT "vectors_volatilityregime_instrument_id_fkey" FOREIGN KEY ("instrument_id") REFERENCES "marketdata_instrument_key" ("id");
--
-- On Citus, VolatilityRegime.feature_set refers to its model's keys
--
ALTER TABLE "vectors_volatilityregime" ADD CONSTRAINT "vectors_volatilityregime_feature_set_id_fkey" FOREIGN KEY ("feature_set_id") REFERENCES "vectors_featureset_key" ("id");
COMMIT;
