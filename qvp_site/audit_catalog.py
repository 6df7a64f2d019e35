"""What the audit chain's checks hold the database's catalog to: the audit functions as their
SQL file defines them, the log's tables with their own triggers and no rules, and each audited
table's trigger calling the right function, of the right type, in every session, keeping out
exactly the declared columns. A superuser who rewrote any of these could change what the log
records without a link breaking."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qvp_site.audit_report import Report
from qvp_site.db import sqlfiles
from qvp_site.db.audit import AUDIT_TABLE, LEFT_OUT

if TYPE_CHECKING:
    from qvp_site.audit_report import Cursor

# pg_trigger.tgtype of FOR EACH ROW (1) AFTER INSERT (4) OR DELETE (8) OR UPDATE (16).
AFTER_EACH_ROW_CHANGE = 1 | 4 | 8 | 16


# --- the functions the chain depends on --------------------------------------------------------
def function_problems(cursor: Cursor, report: Report) -> None:
    """Each audit function as its latest SQL version defines it: one function of its name in
    the whole database (an overload or a namesake in another schema could stand in for it),
    in public, with the same body, settings (a search_path changed would let another function
    stand in for one it calls) and SECURITY DEFINER. A superuser who rewrote the trigger's
    function could drop a column from every entry."""
    expected = audit_functions()
    cursor.execute(
        "SELECT p.proname, n.nspname, p.prosrc, coalesce(p.proconfig, '{}'), p.prosecdef"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE p.proname = ANY(%s)",
        [sorted(expected)],
    )
    found: dict[str, list[tuple[str, tuple[str, list[str], bool]]]] = {}
    for name, schema, body, config, definer in cursor.fetchall():
        found.setdefault(name, []).append((schema, (body, sorted(config), definer)))
    for name, (body, config, definer) in sorted(expected.items()):
        versions = found.get(name, [])
        if not versions:
            report.problems.append(f"the audit function {name} is gone")
        elif len(versions) > 1:
            where = ", ".join(sorted(schema for schema, _ in versions))
            report.problems.append(
                f"the audit function {name} has namesakes (in {where}): another could stand in"
            )
        elif versions[0] != ("public", (body, sorted(config), definer)):
            report.problems.append(
                f"the audit function {name} is not as its SQL version defines it (its body,"
                " settings, schema or SECURITY DEFINER were changed)"
            )


# The triggers the log's own tables must have, and no others: one more could rewrite what the
# log is given (a BEFORE INSERT dropping a column) or lift its protection.
LOG_TRIGGERS = {
    AUDIT_TABLE: {"qvp_audit_append_only", "qvp_audit_truncate"},
    "qvp_site_auditcheckpoint": {
        "qvp_audit_checkpoint_append_only",
        "qvp_audit_checkpoint_truncate",
    },
    "qvp_audit_head": set(),
}


def trigger_problems(cursor: Cursor, report: Report) -> None:
    cursor.execute(
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE c.oid = ANY(%s::regclass[]) AND NOT t.tgisinternal",
        [[f"public.{table}" for table in LOG_TRIGGERS]],
    )
    found: dict[str, dict[str, str]] = {table: {} for table in LOG_TRIGGERS}
    for table, name, enabled in cursor.fetchall():
        found[table][name] = enabled
    cursor.execute(
        "SELECT DISTINCT c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class"
        " WHERE c.oid = ANY(%s::regclass[])",
        [[f"public.{table}" for table in LOG_TRIGGERS]],
    )
    for (table,) in cursor.fetchall():
        report.problems.append(f"{table}: a rule was put on it, which could rewrite its rows")
    for table, wanted in LOG_TRIGGERS.items():
        extra = sorted(set(found[table]) - wanted)
        missing = sorted(wanted - set(found[table]))
        off = sorted(n for n, enabled in found[table].items() if n in wanted and enabled != "O")
        for names, what in ((extra, "unexpected"), (missing, "missing"), (off, "not enabled")):
            if names:
                report.problems.append(f"{table}: {what} trigger(s) {', '.join(names)}")


_FUNCTION = re.compile(
    r"CREATE OR REPLACE (?:FUNCTION|PROCEDURE) (\w+)\(.*?\)(.*?)AS \$\$(.*?)\$\$", re.DOTALL
)
_SETTING = re.compile(r"SET (\w+) = (.+?)(?=\s+SET\s|\s+AS\s|$)", re.DOTALL)


def audit_functions() -> dict[str, tuple[str, list[str], bool]]:
    """name -> (body, settings as pg_proc keeps them, SECURITY DEFINER), from the audit
    family's latest version, which defines every function of the chain."""
    text = sqlfiles.latest_sql("qvp_site", "audit")
    found = {}
    for name, header, body in _FUNCTION.findall(text):
        settings = [
            f"{_GUC_NAMES.get(k.lower(), k)}={v.strip().strip(chr(39))}"
            for k, v in _SETTING.findall(header + " AS ")
        ]
        found[name] = (body, settings, "SECURITY DEFINER" in header)
    return found


# GUC names as pg_proc keeps them.
_GUC_NAMES = {"timezone": "TimeZone", "search_path": "search_path"}


def audit_trigger_in_order(cursor: Cursor, table: str, report: Report) -> bool:
    """Whether ``table``'s audit trigger is there, fires in every session ('O': origin, the
    default; 'A': always) and keeps out exactly the declared columns. A problem says what
    else; the rows are still compared where the trigger exists."""
    cursor.execute(
        "SELECT t.tgenabled, t.tgargs,"
        " CASE WHEN t.tgfoid = 'public.qvp_audit_row()'::regprocedure THEN 'qvp_audit_row'"
        " ELSE t.tgfoid::regprocedure::text END, t.tgtype FROM pg_trigger t"
        " WHERE t.tgrelid = to_regclass(%s) AND t.tgname = 'qvp_audit'",
        [table],
    )
    found = cursor.fetchone()
    if found is None:
        report.problems.append(f"{table}: its audit trigger is gone; its changes go unrecorded")
        return False
    enabled, arguments, function, kind = found
    if (function, kind) != ("qvp_audit_row", AFTER_EACH_ROW_CHANGE):
        report.problems.append(
            f"{table}: its audit trigger calls {function} (type {kind}), not qvp_audit_row"
            " after each row inserted, updated or deleted"
        )
    if enabled not in ("O", "A"):
        report.problems.append(
            f"{table}: its audit trigger is {'disabled' if enabled == 'D' else 'replica-only'};"
            " its changes go unrecorded"
        )
    left_out = tuple(a.decode() for a in bytes(arguments).split(b"\x00") if a)
    if left_out != LEFT_OUT.get(table, ()):
        report.problems.append(
            f"{table}: its audit trigger keeps {', '.join(left_out) or 'nothing'} out of the"
            f" record, not the declared {', '.join(LEFT_OUT.get(table, ())) or 'nothing'}"
        )
    return True
