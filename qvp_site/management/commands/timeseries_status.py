from __future__ import annotations

from django.core.management.base import BaseCommand
from django.template.defaultfilters import filesizeformat

from qvp_site.db import engine
from qvp_site.db.status import table_status


class Command(BaseCommand):
    help = (
        "Show the time-series engine in use and each time-series table: chunks or partitions, "
        "row estimates, sizes, compression, policies and their last runs, aggregates; on Citus,"
        " each distributed table's shards, rows and bytes per node."
    )

    def handle(self, *args, **options):
        info = engine.detect()
        version = f" {info.timescaledb_version}" if info.timescaledb_version else ""
        self.stdout.write(
            f"engine: {info.engine}{version} (PostgreSQL {info.server_version},"
            f" pgvector {info.pgvector_version or 'missing'})"
        )
        for status in table_status():
            span = (
                f"{status.oldest:%Y-%m-%d} .. {status.newest:%Y-%m-%d}"
                if status.oldest
                else "empty"
            )
            self.stdout.write(
                f"\n{status.table} ({status.kind}, chunks of {status.chunk_interval}):"
                f" {status.chunks} chunk(s) {span}, ~{status.row_estimate} rows,"
                f" {filesizeformat(status.total_bytes)}"
            )
            for share in status.nodes:
                if not share.reachable:
                    self.stdout.write(
                        f"  on {share.node}: {share.shards} shard(s), the worker did not answer"
                    )
                    continue
                unanalysed = " (not analysed yet)" if share.unanalysed else ""
                self.stdout.write(
                    f"  on {share.node}: {share.shards} shard(s), ~{share.row_estimate} rows"
                    f"{unanalysed}, {filesizeformat(share.total_bytes)}"
                )
            if status.compression_ratio:
                self.stdout.write(
                    f"  compressed: {status.compressed_chunks} chunk(s),"
                    f" ratio {status.compression_ratio:.1f}x"
                )
            for line in status.policies + status.aggregates:
                self.stdout.write(f"  {line}")
