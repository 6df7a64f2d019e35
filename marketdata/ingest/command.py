"""What ``ingest_bars`` and ``ingest_ticks`` share: their options and summary.

The summary's counts: *inserted*, rows at a key (time; time and sequence for ticks) the table
did not hold; *revised*, stored rows whose values the file changes, each old row kept as a
revision (``<table>revision``, change 'revised', naming the load) and readable as known before
the load with ``known_at``; *unchanged*, stored rows the file repeats as they are (loading
the same file twice records nothing); *rejected*, bad rows left out by ``--skip-invalid``.
"""

from __future__ import annotations

import argparse
import getpass
import zoneinfo
from argparse import ArgumentParser
from datetime import UTC, date, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError

from marketdata.ingest.layouts import parse_columns_option
from marketdata.ingest.pipeline import IngestOptions, IngestResult, ingest_file
from marketdata.ingest.targets import TARGETS
from marketdata.models import Instrument
from qvp_site.db import outages
from qvp_site.loading.layout import LayoutError
from qvp_site.loading.progress import ProgressBar
from qvp_site.loading.refusals import IngestRefused


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a CSV or Parquet file")
    parser.add_argument(
        "--symbol",
        required=True,
        help="the instrument, e.g. AAPL or GBPUSD: the one that bore the symbol on the rows'"
        " dates (FB in 2020: the one now META); a symbol never borne creates one",
    )
    parser.add_argument(
        "--asset-class",
        default=Instrument.AssetClass.EQUITY,
        choices=Instrument.AssetClass.values,
        help="for an instrument the load creates (default: equity)",
    )
    parser.add_argument(
        "--columns",
        help="which column holds what, where the header does not say: ts=Date,close=Close,...",
    )
    parser.add_argument("--delimiter", help="field separator (default: found from the header)")
    parser.add_argument(
        "--tz", default="UTC", help="time zone of times written without one (default: UTC)"
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="load the good rows and write the bad ones, with why, to <name>.rejected.csv",
    )


def run(command: BaseCommand, kind: str, options: dict) -> None:
    """Load the file as the command's options say and print a summary."""
    path: Path = options["path"]
    if not path.is_file():
        raise CommandError(f"no file at {path}")
    ingest_options = IngestOptions(
        symbol=options["symbol"],
        kind=kind,
        asset_class=options["asset_class"],
        columns=_columns(options["columns"]),
        delimiter=_delimiter(options["delimiter"]),
        tz=_tz(options["tz"]),
        skip_invalid=options["skip_invalid"],
        adjusted_through=_adjusted_through(options.get("adjusted_through")),
    )
    with ProgressBar(command) as progress:
        try:
            result = ingest_file(path, ingest_options, os_user=_os_user(), progress=progress)
        except IngestRefused as refused:
            raise CommandError(str(refused)) from refused
        except OperationalError as error:
            if not outages.is_outage(error):
                raise
            # The server, or on Citus a worker, went away: the load's one transaction rolled
            # back (its record says failed where the database could still take that).
            raise CommandError(
                f"the load of {path.name} did not finish: the database became unavailable"
                f" ({_first_line(error)}). Load the file again once it is back: rows already"
                " stored are left as they are."
            ) from error
    _report(command, result, ingest_options, options.get("verbosity", 1))


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def date_argument(value: str) -> date:
    """A YYYY-MM-DD option's date, else argparse names the option and the value."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _adjusted_through(value: date | str | None) -> date | None:
    """``--adjusted-through``: a date not after today (UTC); no vendor adjusted a file for a
    split that had not happened when it wrote it."""
    if value is None:
        return None
    if isinstance(value, str):  # call_command with a string skips argparse's type
        try:
            value = date_argument(value)
        except argparse.ArgumentTypeError as error:
            raise CommandError(f"--adjusted-through: {error}") from None
    today = datetime.now(UTC).date()
    if value > today:
        raise CommandError(
            f"--adjusted-through: {value.isoformat()} is after today ({today.isoformat()}):"
            " a vendor adjusts for splits that have happened"
        )
    return value


def _columns(value: str | None) -> dict[str, str]:
    try:
        return parse_columns_option(value)
    except LayoutError as error:
        raise CommandError(str(error)) from error


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    value = {"\\t": "\t", "tab": "\t"}.get(value, value)
    if len(value) != 1:
        raise CommandError(f"--delimiter must be one character, not {value!r}")
    return value


def _tz(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise CommandError(f"--tz: unknown time zone {value!r}") from error
    return value


def _os_user() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no name for this uid (some containers)
        return ""


def _report(
    command: BaseCommand, result: IngestResult, options: IngestOptions, verbosity: int
) -> None:
    write = command.stdout.write
    if result.instrument_created:
        write(f"Created instrument {options.symbol} ({options.asset_class}).")
    what = TARGETS[options.kind].description
    write(f"Read {result.record.file_name} as {result.layout}.")
    # "revised": stored rows the file changed, each kept as a revision (see the docstring).
    write(
        command.style.SUCCESS(
            f"{options.symbol} {what}: {result.rows_read:,} rows read, {result.inserted:,}"
            f" inserted, {result.updated:,} revised, {result.unchanged:,} unchanged,"
            f" {result.rejected:,} rejected in {result.seconds:.2f} s"
            f" ({result.rows_per_second:,.0f} rows/s)."
        )
    )
    if options.adjusted_through is not None:
        through = options.adjusted_through.isoformat()
        write(
            f"Split-adjusted by the vendor through {through}: {result.unadjusted:,} rows"
            " divided back to the prices as traded by the splits known."
        )
        if not result.unadjusted and result.inserted + result.updated:
            # Right for a stock that never split; else the splits were not loaded first.
            write(
                command.style.WARNING(
                    f"No split of {options.symbol} known adjusts these rows: if it split on or"
                    f" before {through}, load its splits (ingest_actions) and this file again,"
                    " which revises the rows to the prices as traded."
                )
            )
    if verbosity >= 2:
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in result.phases.items())
        write(f"Time spent: {phases}.")
    if result.deferred:
        write(f"The rows are in; the {result.deferred}")
    if result.rejects_path:
        write(
            command.style.WARNING(
                f"Rejected {result.rejected:,} rows; they are in {result.rejects_path}"
                " with the reason for each."
            )
        )
