"""What the audit chain's checks hold the database's catalog to: the audit functions as their
SQL file defines them, the log's tables with their own triggers and no rules, and each audited
table's trigger calling the right function, of the right type, in every session, keeping out
exactly the declared columns. A superuser who rewrote any of these could change what the log
records without a link breaking."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from qvp_site.audit_report import Report
from qvp_site.db import sqlfiles
from qvp_site.db.audit import AUDIT_TABLE, LEFT_OUT

if TYPE_CHECKING:
    from qvp_site.audit_report import Cursor

# pg_trigger.tgtype bits (neither BEFORE, 2, nor INSTEAD OF, 64: AFTER).
_ROW, _INSERT, _DELETE, _UPDATE = 1, 4, 8, 16
# The row trigger: every change (a table that cannot take a transition table), or updates and
# deletes beside the statement trigger that records the inserts (qvp_site 0011).
AFTER_EACH_ROW_CHANGE = _ROW | _INSERT | _DELETE | _UPDATE
AFTER_EACH_ROW_UPDATE_DELETE = _ROW | _DELETE | _UPDATE
AFTER_INSERT_STATEMENT = _INSERT
# The transition table qvp_audit_insert reads.
INSERTED = "inserted"


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
    """Whether ``table``'s audit triggers are there: its row trigger (qvp_audit), and its
    statement trigger (qvp_audit_insert) unless the row trigger records the inserts too; each
    firing in every session ('O': origin, the default; 'A': always), for every row (no WHEN,
    no column list), keeping out exactly the declared columns. A problem says what else; the
    rows are still compared where the row trigger exists."""
    cursor.execute(
        "SELECT t.tgname, t.tgenabled, t.tgargs,"
        " CASE t.tgfoid WHEN to_regprocedure('public.qvp_audit_row()') THEN 'qvp_audit_row'"
        " WHEN to_regprocedure('public.qvp_audit_insert()') THEN 'qvp_audit_insert'"
        " ELSE t.tgfoid::regprocedure::text END, t.tgtype,"
        " t.tgqual IS NOT NULL OR cardinality(t.tgattr::int2[]) > 0, t.tgnewtable, c.relkind"
        " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE t.tgrelid = to_regclass(%s) AND t.tgname IN ('qvp_audit', 'qvp_audit_insert')",
        [table],
    )
    found = {name: rest for name, *rest in cursor.fetchall()}
    row, statement = found.get("qvp_audit"), found.get("qvp_audit_insert")
    if row is None:
        gone = "its audit triggers are" if statement is None else "its row audit trigger is"
        report.problems.append(f"{table}: {gone} gone; its changes go unrecorded")
        return False
    for name, trigger in found.items():
        _trigger_settings(table, name, trigger, report)
    _row_trigger_form(table, row[3], statement is not None, report)
    if statement is not None:
        _statement_trigger_form(table, statement, report)
    return True


def _row_trigger_form(table: str, kind: int, by_statement: bool, report: Report) -> None:
    """The row trigger records updates and deletes, and inserts unless the statement trigger
    does (not both: each insert would be recorded twice)."""
    expected = AFTER_EACH_ROW_UPDATE_DELETE if by_statement else AFTER_EACH_ROW_CHANGE
    if kind == expected:
        return
    if kind == AFTER_EACH_ROW_UPDATE_DELETE:
        report.problems.append(
            f"{table}: its inserts go unrecorded: its row audit trigger records updates and"
            " deletes only, and its statement trigger qvp_audit_insert is gone"
        )
    elif kind == AFTER_EACH_ROW_CHANGE:
        report.problems.append(
            f"{table}: its inserts are recorded twice, by its row audit trigger and by"
            " qvp_audit_insert"
        )
    else:
        report.problems.append(
            f"{table}: its audit trigger qvp_audit is of type {kind}, not after each row"
            f" {'updated or deleted' if by_statement else 'inserted, updated or deleted'}"
        )


def _statement_trigger_form(table: str, trigger: list[Any], report: Report) -> None:
    _enabled, _arguments, _function, kind, _narrowed, transition, relkind = trigger
    if (kind, transition) != (AFTER_INSERT_STATEMENT, INSERTED):
        report.problems.append(
            f"{table}: its audit trigger qvp_audit_insert is of type {kind} with transition"
            f" table {transition}, not after each INSERT statement with its rows as {INSERTED}"
        )
    if relkind == "p":
        report.problems.append(
            f"{table}: it is partitioned and its inserts are recorded by statement: an insert"
            " straight into a partition goes unrecorded"
        )


_FUNCTIONS = {"qvp_audit": "qvp_audit_row", "qvp_audit_insert": "qvp_audit_insert"}


def _trigger_settings(table: str, name: str, trigger: list[Any], report: Report) -> None:
    enabled, arguments, function, _kind, narrowed, _transition, _relkind = trigger
    if function != _FUNCTIONS[name]:
        report.problems.append(
            f"{table}: its audit trigger {name} calls {function}, not {_FUNCTIONS[name]}"
        )
    if enabled not in ("O", "A"):
        report.problems.append(
            f"{table}: its audit trigger {name} is"
            f" {'disabled' if enabled == 'D' else 'replica-only'}; its changes go unrecorded"
        )
    if narrowed:
        report.problems.append(
            f"{table}: its audit trigger {name} fires only for some rows or columns (a WHEN"
            " condition or a column list): its other changes go unrecorded"
        )
    left_out = tuple(a.decode() for a in bytes(arguments).split(b"\x00") if a)
    if left_out != LEFT_OUT.get(table, ()):
        report.problems.append(
            f"{table}: its audit trigger {name} keeps {', '.join(left_out) or 'nothing'} out of"
            f" the record, not the declared {', '.join(LEFT_OUT.get(table, ())) or 'nothing'}"
        )
