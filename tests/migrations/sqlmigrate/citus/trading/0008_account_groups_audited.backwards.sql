BEGIN;
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "trading_account_groups";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "trading_account_groups";
COMMIT;
