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
