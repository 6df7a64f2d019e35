"""Ingest on a Citus cluster: 1,000,000 one-minute bars over 100 instruments through
``ingest_bars`` (one file per instrument), then where they landed, worker by worker.

    DATABASE_URL=postgresql://...coordinator.../qvp QVP_CITUS_WORKERS=host:port,... \\
        QVP_CITUS_SHARD_COUNT=4 .venv/bin/python bench/cluster_ingest.py [--instruments 100]
        [--bars 10000]

Prints the rate of the whole run (files written before the clock starts), then each
worker's shards, exact rows (counted per shard) and bytes of marketdata_minutebar, and the
hourly summary's rows beside the bars'. Runs on any server; elsewhere than Citus it prints the
rate alone, the same run on one node. In a throwaway database of the configured server
(bench/support/scratch.py; on Citus its copies on the workers are dropped too). Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.bar_files import ingest_all, write_files  # noqa: E402
from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_cluster_ingest")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.db import connection  # noqa: E402
from django.template.defaultfilters import filesizeformat  # noqa: E402

from qvp_site.db import citus, engine  # noqa: E402

# Each worker's shards of the bars, their exact rows (counted on each shard, partitions
# included) and bytes.
PER_WORKER = """
WITH counted AS (
    SELECT shardid, result::bigint AS bars
    FROM run_command_on_shards('marketdata_minutebar', 'SELECT count(*) FROM %s')
)
SELECT s.nodename || ':' || s.nodeport, count(*), sum(c.bars),
       (SELECT sum(z.shard_size) FROM citus_shards z
        WHERE pg_partition_root(z.table_name) = 'marketdata_minutebar'::regclass
          AND z.nodename = s.nodename AND z.nodeport = s.nodeport)
FROM citus_shards s JOIN counted c USING (shardid)
WHERE s.table_name = 'marketdata_minutebar'::regclass
GROUP BY s.nodename, s.nodeport ORDER BY 1
"""


def report_workers() -> None:
    with connection.cursor() as cursor:
        cursor.execute(PER_WORKER)
        for node, shards, bars, size in cursor.fetchall():
            print(f"  {node}: {shards} shard(s), {bars:,} bars, {filesizeformat(size)}")
        cursor.execute("SELECT sum(bar_count) FROM marketdata_minutebar_1h")
        print(f"  the hourly summary counts {cursor.fetchone()[0]:,} bars")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--bars", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qvp-bench-cluster-") as tmp:
        files = write_files(Path(tmp), args.instruments, args.bars)
        with throwaway_database() as name:
            try:
                info = engine.detect()
                print(f"engine: {info.engine}, {info.citus_workers} worker(s)")
                seconds = ingest_all(files)
                total = args.instruments * args.bars
                print(
                    f"ingest_bars, {total:,} bars in {args.instruments} files: {seconds:.1f} s,"
                    f" {total / seconds:,.0f} rows/s"
                )
                if info.is_citus:
                    report_workers()
            finally:
                if engine.is_citus():
                    citus.drop_on_workers(name, connection)


if __name__ == "__main__":
    main()
