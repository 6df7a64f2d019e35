BEGIN;
--
-- Audit every change of CashEntry
--
DROP TRIGGER IF EXISTS qvp_audit ON "trading_cashentry";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "trading_cashentry";
--
-- Audit every change of Position
--
DROP TRIGGER IF EXISTS qvp_audit ON "trading_position";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "trading_position";
--
-- Audit every change of Execution
--
DROP TRIGGER IF EXISTS qvp_audit ON "trading_execution";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "trading_execution";
--
-- Audit every change of Order
--
DROP TRIGGER IF EXISTS qvp_audit ON "trading_order";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "trading_order";
--
-- Audit every change of Account
--
DROP TRIGGER IF EXISTS qvp_audit ON "trading_account";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "trading_account";
--
-- Raw SQL operation
--
DROP POLICY IF EXISTS account_read ON "trading_account";DROP POLICY IF EXISTS account_insert ON "trading_account";DROP POLICY IF EXISTS account_update ON "trading_account";DROP POLICY IF EXISTS account_delete ON "trading_account";DROP POLICY IF EXISTS account_read ON "trading_order";DROP POLICY IF EXISTS account_insert ON "trading_order";DROP POLICY IF EXISTS account_update ON "trading_order";DROP POLICY IF EXISTS account_delete ON "trading_order";DROP POLICY IF EXISTS account_read ON "trading_execution";DROP POLICY IF EXISTS account_insert ON "trading_execution";DROP POLICY IF EXISTS account_update ON "trading_execution";DROP POLICY IF EXISTS account_delete ON "trading_execution";DROP POLICY IF EXISTS account_read ON "trading_position";DROP POLICY IF EXISTS account_insert ON "trading_position";DROP POLICY IF EXISTS account_update ON "trading_position";DROP POLICY IF EXISTS account_delete ON "trading_position";DROP POLICY IF EXISTS account_read ON "trading_cashentry";DROP POLICY IF EXISTS account_insert ON "trading_cashentry";DROP POLICY IF EXISTS account_update ON "trading_cashentry";DROP POLICY IF EXISTS account_delete ON "trading_cashentry";DROP POLICY IF EXISTS account_read ON "trading_portfoliosnapshot";DROP POLICY IF EXISTS account_insert ON "trading_portfoliosnapshot";DROP POLICY IF EXISTS account_update ON "trading_portfoliosnapshot";DROP POLICY IF EXISTS account_delete ON "trading_portfoliosnapshot";ALTER TABLE "trading_account" DISABLE ROW LEVEL SECURITY;ALTER TABLE "trading_order" DISABLE ROW LEVEL SECURITY;ALTER TABLE "trading_execution" DISABLE ROW LEVEL SECURITY;ALTER TABLE "trading_position" DISABLE ROW LEVEL SECURITY;ALTER TABLE "trading_cashentry" DISABLE ROW LEVEL SECURITY;ALTER TABLE "trading_portfoliosnapshot" DISABLE ROW LEVEL SECURITY;DROP FUNCTION IF EXISTS trading_sees_all(boolean, name), trading_group_accounts(boolean), trading_is_auditor(bigint);
COMMIT;
