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

CREATE OR REPLACE FUNCTION trading_visible_accounts(writing boolean, acting_role name)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    uid bigint := nullif(current_setting('qvp.user_id', true), '')::bigint;
    actor text := coalesce(current_setting('qvp.actor', true), '');
    superuser boolean;
    auditor boolean;
BEGIN
    IF uid IS NULL THEN
        IF actor LIKE 'system:%' THEN
            RETURN QUERY SELECT id FROM trading_account;
        ELSIF NOT writing AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_readonly')
              AND pg_has_role(acting_role, 'trading_readonly', 'MEMBER') THEN
            RETURN QUERY SELECT id FROM trading_account;
        END IF;
        RETURN;
    END IF;
    SELECT u.is_superuser INTO superuser FROM auth_user u WHERE u.id = uid AND u.is_active;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    auditor := EXISTS (SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
                       WHERE ug.user_id = uid AND g.name = 'auditors');
    IF (auditor AND writing) THEN
        RETURN;
    END IF;
    IF superuser OR auditor THEN
        RETURN QUERY SELECT id FROM trading_account;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT DISTINCT ag.account_id FROM trading_account_groups ag
        JOIN auth_user_groups ug ON ug.group_id = ag.group_id
        WHERE ug.user_id = uid;
END $$;
