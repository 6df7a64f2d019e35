BEGIN;
--
-- Raw SQL operation
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_account_groups" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_account_groups" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
SELECT qvp_audit_snapshot('trading_account_groups'::regclass, ARRAY[]::text[]);
COMMIT;
