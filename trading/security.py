"""Row-level security policies for the account-scoped tables (see ``sql/security.sql``)."""

from __future__ import annotations

from qvp_site.db.quoting import ident

# Sub-selects, so that each function runs once per statement rather than once per row.
READ = (
    "(SELECT trading_sees_all(false, current_user))"
    " OR {column} IN (SELECT trading_group_accounts(false))"
)
WRITE = (
    "(SELECT trading_sees_all(true, current_user))"
    " OR {column} IN (SELECT trading_group_accounts(true))"
)
# A new account has no groups yet: only those who write every account create accounts.
CREATE_ACCOUNTS = "(SELECT trading_sees_all(true, current_user))"


def policies_sql(table: str, column: str = "account_id", insert: str | None = None) -> str:
    """Reading needs the account visible; writing needs it writable (auditors write none).
    ``insert`` replaces the check of new rows (accounts: who may create them)."""
    t, read, write = ident(table), READ.format(column=column), WRITE.format(column=column)
    return f"""
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS account_read ON {t};
DROP POLICY IF EXISTS account_insert ON {t};
DROP POLICY IF EXISTS account_update ON {t};
DROP POLICY IF EXISTS account_delete ON {t};
CREATE POLICY account_read ON {t} FOR SELECT USING ({read});
CREATE POLICY account_insert ON {t} FOR INSERT WITH CHECK ({insert or write});
CREATE POLICY account_update ON {t} FOR UPDATE USING ({write}) WITH CHECK ({write});
CREATE POLICY account_delete ON {t} FOR DELETE USING ({write});
"""


def drop_policies_sql(table: str) -> str:
    t = ident(table)
    return (
        "".join(
            f"DROP POLICY IF EXISTS account_{name} ON {t};"
            for name in ("read", "insert", "update", "delete")
        )
        + f"ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;"
    )
