BEGIN;
--
-- On Citus, distribute MinuteBarRevision along MinuteBar
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';

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
             WHERE tgrelid = '"marketdata_minutebarrevision"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_minutebarrevision', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_minutebarrevision"'::regclass);
    END LOOP;
END
$qvp$;
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"marketdata_minutebarrevision"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_minutebarrevision', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"marketdata_minutebarrevision"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"marketdata_minutebarrevision"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
ALTER TABLE "marketdata_minutebarrevision" DROP CONSTRAINT "marketdata_minutebarrevision_pkey", ADD CONSTRAINT "marketdata_minutebarrevision_pkey" PRIMARY KEY ("id", "instrument_id");
SELECT create_distributed_table('marketdata_minutebarrevision', 'instrument_id', colocate_with => 'marketdata_minutebar');
--
-- On Citus, distribute DailyBarRevision along MinuteBar
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';

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
             WHERE tgrelid = '"marketdata_dailybarrevision"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_dailybarrevision', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_dailybarrevision"'::regclass);
    END LOOP;
END
$qvp$;
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"marketdata_dailybarrevision"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_dailybarrevision', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"marketdata_dailybarrevision"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"marketdata_dailybarrevision"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
ALTER TABLE "marketdata_dailybarrevision" DROP CONSTRAINT "marketdata_dailybarrevision_pkey", ADD CONSTRAINT "marketdata_dailybarrevision_pkey" PRIMARY KEY ("id", "instrument_id");
SELECT create_distributed_table('marketdata_dailybarrevision', 'instrument_id', colocate_with => 'marketdata_minutebar');
--
-- On Citus, distribute TickRevision along MinuteBar
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';

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
             WHERE tgrelid = '"marketdata_tickrevision"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_tickrevision', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_tickrevision"'::regclass);
    END LOOP;
END
$qvp$;
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"marketdata_tickrevision"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_tickrevision', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"marketdata_tickrevision"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"marketdata_tickrevision"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
ALTER TABLE "marketdata_tickrevision" DROP CONSTRAINT "marketdata_tickrevision_pkey", ADD CONSTRAINT "marketdata_tickrevision_pkey" PRIMARY KEY ("id", "instrument_id");
SELECT create_distributed_table('marketdata_tickrevision', 'instrument_id', colocate_with => 'marketdata_minutebar');
--
-- On Citus, distribute OptionQuoteRevision along MinuteBar
--
SET LOCAL citus.multi_shard_modify_mode = 'sequential';

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
             WHERE tgrelid = '"marketdata_optionquoterevision"'::regclass AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_optionquoterevision', t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, '"marketdata_optionquoterevision"'::regclass);
    END LOOP;
END
$qvp$;
DO $qvp$
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = '"marketdata_optionquoterevision"'::regclass AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ('marketdata_optionquoterevision', k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', '"marketdata_optionquoterevision"'::regclass, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', '"marketdata_optionquoterevision"'::regclass, k.conname);
    END LOOP;
END
$qvp$;
ALTER TABLE "marketdata_optionquoterevision" DROP CONSTRAINT "marketdata_optionquoterevision_pkey", ADD CONSTRAINT "marketdata_optionquoterevision_pkey" PRIMARY KEY ("id", "underlying_id");
SELECT create_distributed_table('marketdata_optionquoterevision', 'underlying_id', colocate_with => 'marketdata_minutebar');
COMMIT;
