"""News files into NewsArticle by the loading engine's road (``qvp_site.loading``): staged by COPY
with line numbers, checked in one SQL statement that names each bad line and all its reasons,
refused whole when any line is bad, then written by one INSERT ... SELECT. Re-loading a file
changes nothing (the articles' key is source, headline and time).

CSV (and Parquet) files go through the engine's reader and staging unchanged, with a layout
of the news columns. JSON lines are COPYed one document a line (backslashes doubled, so
COPY's text format hands each line over untouched) and typed in SQL into the same staging
table, so the checks and the write are the same for both. Articles already in memory (the
API's batches: an iterable of dicts) are written as JSON lines into COPY straight from memory,
never through a file, and a bad one is named by its row (the first is row 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from os import PathLike
from pathlib import Path

from django.db import DatabaseError, connection, transaction

from qvp_site.db import partitions
from qvp_site.db.quoting import ident, literal
from qvp_site.loading import staging
from qvp_site.loading.checks import rejection
from qvp_site.loading.layout import Layout, LayoutError, StageColumn, normalize
from qvp_site.loading.progress import NoProgress, Progress
from qvp_site.loading.readers import BLOCK_SIZE, ReadError, open_source
from qvp_site.loading.refusals import IngestRefused, refused
from signals.models import NewsArticle

STAGE, REJECTED = staging.STAGE, staging.REJECTED
JSON_LINES = "qvp_news_json"
TABLE = NewsArticle._meta.db_table
LINES_PER_BLOCK = 10_000  # articles in memory handed to COPY at a time

# role: (header names that mean it, best first; its type in the staging table)
ROLES = {
    "ts": (("publishedat", "published", "timestamp", "datetime", "time", "date", "ts"),
           "timestamp with time zone"),
    "source": (("source", "publisher", "provider"), "text"),
    "headline": (("headline", "title"), "text"),
    "body": (("body", "text", "content", "summary", "description"), "text"),
    "url": (("url", "link"), "text"),
    "symbols": (("symbols", "tickers", "symbol", "ticker"), "text"),
    "sentiment": (("sentiment", "sentimentscore", "score"), "double precision"),
}  # fmt: skip
REQUIRED = ("ts", "source", "headline")

# Each rule: (condition on a staged row, its reason); a row is bad when any holds.
_RULES = [
    ("bad IS NOT NULL", "bad"),
    ("ts IS NULL AND bad IS NULL", "'no time'"),
    (
        "ts < timestamptz '1900-01-01 00:00+00' OR ts > now() + interval '1 day'",
        "format('time %s out of range', ts)",
    ),
    ("coalesce(btrim(source), '') = ''", "'no source'"),
    ("coalesce(btrim(headline), '') = ''", "'no headline'"),
    ("length(btrim(source)) > 100", "'source longer than 100 characters'"),
    ("length(btrim(headline)) > 500", "'headline longer than 500 characters'"),
    ("length(btrim(url)) > 1000", "'url longer than 1000 characters'"),
    ("btrim(url) <> '' AND btrim(url) !~ '^https?://'", "format('url %L is not http(s)', url)"),
    ("sentiment >= 'Infinity' OR sentiment <= '-Infinity'", "'sentiment not a finite number'"),
    (
        "sentiment < -1 OR (sentiment > 1 AND sentiment < 'Infinity')",
        "format('sentiment %s outside [-1, 1]', sentiment)",
    ),
    ("unknown IS NOT NULL", "format('unknown symbol(s) %s', unknown)"),
    ("first_line IS NOT NULL", "format('same source, headline and time as line %s', first_line)"),
]

ROWS_SQL = f"""
SELECT line, bad, ts, btrim(source) AS source, btrim(headline) AS headline,
       coalesce(body, '') AS body, coalesce(btrim(url), '') AS url, sentiment,
       array_remove(regexp_split_to_array(coalesce(btrim(symbols), ''), '\\s*[,;| ]\\s*'), '')
           AS symbols
FROM {STAGE}
"""

CHECK_SQL = f"""
CREATE TEMP TABLE {REJECTED} AS
WITH s AS ({ROWS_SQL}),
checked AS (
    SELECT s.*,
           -- A symbol some instrument bore on the article's (UTC) date (the security master:
           -- news of FB in 2020 names the instrument now called META).
           (SELECT string_agg(DISTINCT x, ', ') FROM unnest(s.symbols) AS x
            WHERE NOT EXISTS (
                SELECT 1 FROM marketdata_listing l
                WHERE l.symbol = x AND l.known_until IS NULL
                  AND daterange(l.valid_from, l.valid_until) @> (s.ts AT TIME ZONE 'UTC')::date))
               AS unknown,
           CASE WHEN s.line > min(s.line) OVER (PARTITION BY s.source, s.headline, s.ts)
                THEN min(s.line) OVER (PARTITION BY s.source, s.headline, s.ts) END
               AS first_line
    FROM s
)
SELECT line, concat_ws('; ', {", ".join(f"CASE WHEN {c} THEN {r} END" for c, r in _RULES)})
    AS reason
FROM checked WHERE {" OR ".join(f"({c}) IS TRUE" for c, _ in _RULES)}
"""

WRITE_SQL = f"""
WITH written AS (
    INSERT INTO {TABLE} (ts, source, headline, body, url, symbols, sentiment)
    SELECT ts, source, headline, body, url, symbols, sentiment FROM ({ROWS_SQL}) AS s
    ON CONFLICT (source, headline, ts) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM written
"""


@dataclass
class NewsResult:
    rows_read: int = 0
    inserted: int = 0
    unchanged: int = 0
    layout: str = ""


Articles = Iterable[Mapping[str, object]]


def ingest_news(
    source: Path | str | Articles,
    progress: Progress | None = None,
    name: str = "articles",
) -> NewsResult:
    """Load a CSV, Parquet or JSON-lines file of news, or articles already in memory (dicts
    of the JSON-lines fields; ``name`` names them in a refusal); raises IngestRefused
    (nothing written) when the file cannot be read or any of its lines or rows is bad."""
    is_file = isinstance(source, str | PathLike)
    name = Path(source).name if is_file else name
    progress = progress or NoProgress()
    try:
        return _ingest(Path(source) if is_file else source, name, progress)
    except (LayoutError, ReadError) as error:
        raise IngestRefused(f"refused {name}: {error}") from error
    finally:
        with connection.cursor() as cursor:
            try:
                cursor.execute(f"DROP TABLE IF EXISTS {JSON_LINES}")
                staging.drop(cursor)
            except DatabaseError:
                pass  # the connection is gone: so are its TEMP tables


def _ingest(source: Path | Articles, name: str, progress) -> NewsResult:
    result = NewsResult()
    with transaction.atomic(), connection.cursor() as cursor:
        if not isinstance(source, Path):
            result.rows_read = _stage_json_lines(cursor, _json_lines(source), name, None, progress)
            result.layout, label = "JSON lines", "row"
        elif _is_json_lines(source):
            blocks = _file_blocks(source)
            size = source.stat().st_size
            result.rows_read = _stage_json_lines(cursor, blocks, name, size, progress)
            result.layout, label = "JSON lines", "line"
        else:
            found = open_source(source)
            layout = news_layout(found.header)
            result.layout = layout.describe()
            result.rows_read = staging.load(cursor, found, layout, progress)
            label = found.position_label
        _refuse_bad_rows(cursor, name, label)
        needs = partitions.rows_needs(cursor, TABLE, f"SELECT ts FROM {STAGE}")
    if needs is None:
        return result
    try:  # only the partitions where articles fall, no more new ones than a load may make
        partitions.make_needed(needs)
    except partitions.TooManyPartitions as error:
        raise IngestRefused(f"refused {name}: {error}") from error
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WRITE_SQL)
        result.inserted = cursor.fetchone()[0]
    result.unchanged = result.rows_read - result.inserted
    return result


def news_layout(header: list[str]) -> Layout:
    """Which column holds what, from the header's names; every other column is ignored."""
    names = [normalize(h) for h in header]
    positions: dict[str, int] = {}
    for role, (synonyms, _type) in ROLES.items():
        for synonym in synonyms:
            found = [i for i, n in enumerate(names) if n == synonym and i not in positions.values()]
            if found:
                positions[role] = found[0]
                break
    missing = [r for r in REQUIRED if r not in positions]
    if missing:
        raise LayoutError(
            f"cannot tell where {', '.join(missing)} is in the header ({', '.join(header)});"
            " expected names such as published_at, source, headline, body, url, symbols,"
            " sentiment"
        )
    by_position = {i: role for role, i in positions.items()}
    columns = []
    for i, name in enumerate(header):
        role = by_position.get(i)
        columns.append(
            StageColumn(role, ROLES[role][1], name)
            if role
            else StageColumn(f"unused_{i}", "text", name)
        )
    # Columns the file lacks are staged as NULL, so the checks and the write see every role.
    return Layout(columns=tuple(columns), roles={r: r for r in positions}, ts_kind="text")


def _is_json_lines(path: Path) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    with path.open("rb") as f:
        return f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _file_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(BLOCK_SIZE):
            yield block


def _json_lines(articles: Articles) -> Iterator[bytes]:
    """Each article as one line of JSON (times in ISO 8601), in blocks of lines."""
    lines = []
    for article in articles:
        lines.append(json.dumps(article, default=_iso, allow_nan=False))
        if len(lines) == LINES_PER_BLOCK:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def _iso(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _stage_json_lines(
    cursor, blocks: Iterable[bytes], name: str, size: int | None, progress
) -> int:
    """COPY each line as one text value (backslashes doubled for COPY's text format; the
    delimiter is a control character, which JSON text never holds raw), then type them."""
    cursor.execute(f"DROP TABLE IF EXISTS {JSON_LINES}, {STAGE}")
    cursor.execute(
        f"CREATE TEMP TABLE {JSON_LINES} (line bigint GENERATED BY DEFAULT AS IDENTITY, doc text)"
    )
    progress.start(f"loading {name}", size, "B")
    statement = f"COPY {JSON_LINES} (doc) FROM STDIN (DELIMITER E'\\x01')"
    with connection.wrap_database_errors, cursor.copy(statement) as copy:
        for block in blocks:
            copy.write(block.replace(b"\\", b"\\\\"))
            progress.update(len(block))
    cursor.execute(_typed_json_sql())
    cursor.execute(f"SELECT count(*) FROM {STAGE}")
    return cursor.fetchone()[0]


def _typed_json_sql() -> str:
    """The staging table of the CSV road, from the documents: each role typed where it
    parses, and the reasons a line is bad."""
    values, reasons = [], ["CASE WHEN NOT valid THEN 'not a JSON object' END"]
    for role, (_synonyms, type_) in ROLES.items():
        raw = f"(d->>{literal(role)})"
        if role == "symbols":  # a list, or a string of symbols
            raw = (
                "(CASE jsonb_typeof(d->'symbols') WHEN 'array' THEN (SELECT string_agg(x, ',')"
                " FROM jsonb_array_elements_text(d->'symbols') AS x) ELSE d->>'symbols' END)"
            )
        if type_ == "text":
            values.append(f"{raw} AS {ident(role)}")
            continue
        ok = f"pg_input_is_valid({raw}, {literal(type_)})"
        values.append(f"CASE WHEN {ok} THEN {raw}::{type_} END AS {ident(role)}")
        what = "time" if role == "ts" else "number"
        reasons.append(
            f"CASE WHEN {raw} IS NOT NULL AND NOT {ok} THEN"
            f" format('unparseable {what} in {role}: %L', {raw}) END"
        )
    return (
        f"CREATE TEMP TABLE {STAGE} AS SELECT line, {', '.join(values)},"
        f" NULLIF(concat_ws('; ', {', '.join(reasons)}), '') AS bad"
        f" FROM (SELECT line, valid, CASE WHEN valid THEN doc::jsonb END AS d FROM"
        f" (SELECT line, doc, pg_input_is_valid(doc, 'jsonb')"
        f" AND left(btrim(doc), 1) = '{{' AS valid FROM {JSON_LINES}"
        f" WHERE btrim(doc) <> '') AS lines) AS docs"
    )


def _refuse_bad_rows(cursor, name: str, label: str) -> None:
    _stage_missing_roles(cursor)
    cursor.execute(f"DROP TABLE IF EXISTS {REJECTED}")
    cursor.execute(CHECK_SQL)
    bad = rejection(cursor, cursor.rowcount)
    if bad.total:
        raise refused(name, label, bad)


def _stage_missing_roles(cursor) -> None:
    """Roles the file has no column for, added to the staging table as NULL."""
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
        [STAGE],
    )
    present = {row[0] for row in cursor.fetchall()}
    for role, (_synonyms, type_) in ROLES.items():
        if role not in present:
            cursor.execute(f"ALTER TABLE {STAGE} ADD COLUMN {ident(role)} {type_}")
    if "bad" not in present:
        cursor.execute(f"ALTER TABLE {STAGE} ADD COLUMN bad text")
