"""Reading query plans the same way on one node and on a Citus cluster.

On Citus a plan of a distributed table is a Custom Scan whose tasks carry the plans the workers
ran on the shards ("Remote Plan"), and the shards' copies of an index are renamed there (a long
name is cut and given a hash and the shard's number). Tests that assert what a query reads look
through both."""

from __future__ import annotations

import json
from typing import Any

from qvp_site.db import engine
from qvp_site.db.quoting import literal

# The indexes of a shard's partitions: their parents are the shard's copies of the index, named
# after it with the shard's number.
_SHARD_COPIES_SQL = """
SELECT coalesce(string_agg(i.inhrelid::regclass::text, ','), '')
FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname ~ ('^(' || {pattern} || ')_[0-9]+$')
"""


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, the workers' plans of a Citus scan too."""
    found = [plan]
    for child in plan.get("Plans", []):
        found += plan_nodes(child)
    job = plan.get("Distributed Query", {}).get("Job", {})
    for task in job.get("Tasks", []):
        for remote in task.get("Remote Plan", []):
            for explained in remote:
                found += plan_nodes(explained["Plan"])
    return found


def explained(sql: str, params: list[Any]) -> dict[str, Any]:
    """The plan of ``sql`` (EXPLAIN, FORMAT JSON), its top node."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        found = cursor.fetchone()[0]
    return (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]


def task_counts(plan: dict[str, Any]) -> list[int]:
    """On Citus, the task count of each distributed scan of ``plan``; none elsewhere."""
    return [
        node["Distributed Query"]["Job"]["Task Count"]
        for node in plan_nodes(plan)
        if "Distributed Query" in node
    ]


def index_copies(cursor: Any, indexes: list[str]) -> set[str]:
    """The names of the partitions' copies of ``indexes`` (with the indexes' own names), and on
    Citus the shards' copies on the workers, as a plan names them."""
    cursor.execute(
        "SELECT i.inhrelid::regclass::text FROM pg_inherits i"
        " WHERE i.inhparent = ANY(%s::regclass[])",
        [indexes],
    )
    names = {name for (name,) in cursor.fetchall()} | set(indexes)
    if engine.is_citus():
        command = _SHARD_COPIES_SQL.format(pattern=literal("|".join(indexes)))
        cursor.execute(
            "SELECT nodeport, success, result FROM run_command_on_workers(%s)", [command]
        )
        for port, success, listed in cursor.fetchall():
            assert success, f"the worker on port {port}: {listed}"
            names |= {name for name in listed.split(",") if name}
    return names
