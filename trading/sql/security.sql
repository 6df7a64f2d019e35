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
