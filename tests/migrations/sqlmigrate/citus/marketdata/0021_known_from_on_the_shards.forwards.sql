BEGIN;
--
-- On Citus, known_from of marketdata_minutebar, marketdata_dailybar, marketdata_tick, marketdata_optionquote set on the shards
--

CREATE OR REPLACE FUNCTION qvp_known_from_now() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    -- Who may date a row: a role that may change the column of the distributed table
    -- (TG_ARGV[0]), its owner (its loads and merges), as on one node, where no other role
    -- has the column; the application's role has INSERT of it on the shards (create_db_roles)
    -- but never UPDATE. Any other role gets the moment of its transaction here. Asked of the
    -- table by name, not of the shard in pg_class, which Citus hides from sessions on a worker.
    IF NOT coalesce(has_column_privilege(TG_ARGV[0]::regclass, 'known_from', 'UPDATE'),
                    false) THEN
        NEW.known_from := now();
    END IF;
    RETURN NEW;
END
$$;
SET LOCAL citus.enable_unsafe_triggers = on;
CREATE TRIGGER qvp_set_by_the_database BEFORE INSERT ON "marketdata_minutebar" FOR EACH ROW EXECUTE FUNCTION qvp_known_from_now('marketdata_minutebar');
CREATE TRIGGER qvp_set_by_the_database BEFORE INSERT ON "marketdata_dailybar" FOR EACH ROW EXECUTE FUNCTION qvp_known_from_now('marketdata_dailybar');
CREATE TRIGGER qvp_set_by_the_database BEFORE INSERT ON "marketdata_tick" FOR EACH ROW EXECUTE FUNCTION qvp_known_from_now('marketdata_tick');
CREATE TRIGGER qvp_set_by_the_database BEFORE INSERT ON "marketdata_optionquote" FOR EACH ROW EXECUTE FUNCTION qvp_known_from_now('marketdata_optionquote');
RESET citus.enable_unsafe_triggers;
COMMIT;
