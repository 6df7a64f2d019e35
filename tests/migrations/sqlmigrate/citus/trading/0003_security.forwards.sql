BEGIN;
--
-- Raw SQL operation
--
-- Row-level security on the account-scoped tables: the database itself refuses rows of
-- accounts the acting user may not see. Who acts is in the transaction's settings
-- (qvp.user_id, qvp.actor; see qvp_site/acting.py). The rule is the one of
-- trading/querysets.py:
--   * a superuser reads and writes every account;
--   * a member of the group "auditors" reads every account and writes none;
--   * any other user reads and writes the accounts their groups are granted;
--   * a command or job with no user (actor "system:<name>") reads and writes every account;
--   * the read-only database role trading_readonly reads every account;
--   * nobody declared: nothing.
-- The table owner (migrations, maintenance) bypasses row-level security, as PostgreSQL does.

-- Whether the acting user reads (or writes) every account: a superuser, a command, an auditor
-- or the read-only role reading. Policies call it once per statement, as an InitPlan.
CREATE OR REPLACE FUNCTION trading_sees_all(writing boolean, acting_role name) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    uid bigint := nullif(current_setting('qvp.user_id', true), '')::bigint;
    superuser boolean;
BEGIN
    IF uid IS NULL THEN
        IF coalesce(current_setting('qvp.actor', true), '') LIKE 'system:%' THEN
            RETURN true;
        END IF;
        RETURN NOT writing AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_readonly')
               AND pg_has_role(acting_role, 'trading_readonly', 'MEMBER');
    END IF;
    SELECT u.is_superuser INTO superuser FROM auth_user u WHERE u.id = uid AND u.is_active;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF trading_is_auditor(uid) THEN
        RETURN NOT writing;
    END IF;
    RETURN superuser;
END $$;

CREATE OR REPLACE FUNCTION trading_is_auditor(uid bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
                   WHERE ug.user_id = uid AND g.name = 'auditors')
$$;

-- The accounts the acting user's groups are granted (none to write for an auditor).
CREATE OR REPLACE FUNCTION trading_group_accounts(writing boolean) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    uid bigint := nullif(current_setting('qvp.user_id', true), '')::bigint;
BEGIN
    IF uid IS NULL OR NOT EXISTS (SELECT 1 FROM auth_user WHERE id = uid AND is_active)
       OR (writing AND trading_is_auditor(uid)) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT DISTINCT ag.account_id FROM trading_account_groups ag
        JOIN auth_user_groups ug ON ug.group_id = ag.group_id
        WHERE ug.user_id = uid;
END $$;

-- Row-level security on the account-scoped tables. Reading needs the account visible,
-- writing needs it writable (auditors write none); a new account has no groups yet, so only
-- those who write every account create accounts. Sub-selects, so that each function runs once
-- per statement rather than once per row.

ALTER TABLE "trading_account" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_account";
DROP POLICY IF EXISTS account_insert ON "trading_account";
DROP POLICY IF EXISTS account_update ON "trading_account";
DROP POLICY IF EXISTS account_delete ON "trading_account";
CREATE POLICY account_read ON "trading_account"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_account"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)));
CREATE POLICY account_update ON "trading_account"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_account"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "trading_order" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_order";
DROP POLICY IF EXISTS account_insert ON "trading_order";
DROP POLICY IF EXISTS account_update ON "trading_order";
DROP POLICY IF EXISTS account_delete ON "trading_order";
CREATE POLICY account_read ON "trading_order"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_order"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "trading_order"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_order"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "trading_execution" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_execution";
DROP POLICY IF EXISTS account_insert ON "trading_execution";
DROP POLICY IF EXISTS account_update ON "trading_execution";
DROP POLICY IF EXISTS account_delete ON "trading_execution";
CREATE POLICY account_read ON "trading_execution"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_execution"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "trading_execution"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_execution"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "trading_position" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_position";
DROP POLICY IF EXISTS account_insert ON "trading_position";
DROP POLICY IF EXISTS account_update ON "trading_position";
DROP POLICY IF EXISTS account_delete ON "trading_position";
CREATE POLICY account_read ON "trading_position"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_position"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "trading_position"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_position"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "trading_cashentry" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_cashentry";
DROP POLICY IF EXISTS account_insert ON "trading_cashentry";
DROP POLICY IF EXISTS account_update ON "trading_cashentry";
DROP POLICY IF EXISTS account_delete ON "trading_cashentry";
CREATE POLICY account_read ON "trading_cashentry"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_cashentry"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "trading_cashentry"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_cashentry"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

ALTER TABLE "trading_portfoliosnapshot" ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON "trading_portfoliosnapshot";
DROP POLICY IF EXISTS account_insert ON "trading_portfoliosnapshot";
DROP POLICY IF EXISTS account_update ON "trading_portfoliosnapshot";
DROP POLICY IF EXISTS account_delete ON "trading_portfoliosnapshot";
CREATE POLICY account_read ON "trading_portfoliosnapshot"
    FOR SELECT USING ((SELECT trading_sees_all(false, current_user)) OR account_id IN (SELECT trading_group_accounts(false)));
CREATE POLICY account_insert ON "trading_portfoliosnapshot"
    FOR INSERT WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_update ON "trading_portfoliosnapshot"
    FOR UPDATE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)))
    WITH CHECK ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));
CREATE POLICY account_delete ON "trading_portfoliosnapshot"
    FOR DELETE USING ((SELECT trading_sees_all(true, current_user)) OR account_id IN (SELECT trading_group_accounts(true)));

--
-- Audit every change of Account
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_account" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_account" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Audit every change of Order
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_order" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_order" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Audit every change of Execution
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_execution" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_execution" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Audit every change of Position
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_position" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_position" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Audit every change of CashEntry
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_cashentry" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_cashentry" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
COMMIT;
