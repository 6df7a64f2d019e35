"""ingest_news: the market-data ingest's checks and refusals, for CSV and JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Instrument
from marketdata.security_master import Terms, set_terms
from qvp_site.loading.refusals import IngestRefused
from signals.models import NewsArticle
from signals.news_ingest import ingest_news

CSV = """published_at,source,headline,body,symbols,sentiment,url
2024-05-13T14:00:00Z,Reuters,Apple beats estimates,Revenue up,AAPL,0.6,https://example.com/a
2024-05-13T15:30:00+01:00,Bloomberg,"Tech rally, broad",Both up,AAPL;MSFT,0.25,
2024-05-14 09:00,Reuters,Quiet day,,,,
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ingest(path) -> str:
    out = StringIO()
    call_command("ingest_news", str(path), stdout=out)
    return out.getvalue()


def test_csv_loads_and_reloading_changes_nothing(partitioned, aapl, msft, tmp_path):
    path = write(tmp_path, "news.csv", CSV)
    assert "3 rows read, 3 inserted, 0 already there" in ingest(path)
    tech = NewsArticle.objects.get(headline="Tech rally, broad")
    assert tech.symbols == ["AAPL", "MSFT"]
    assert tech.ts == datetime(2024, 5, 13, 14, 30, tzinfo=UTC)
    assert tech.sentiment == 0.25
    quiet = NewsArticle.objects.get(headline="Quiet day")
    assert quiet.symbols == []
    assert quiet.sentiment is None
    assert list(NewsArticle.objects.about("MSFT").values_list("source", flat=True)) == ["Bloomberg"]
    assert "3 rows read, 0 inserted, 3 already there" in ingest(path)
    assert NewsArticle.objects.count() == 3


def test_a_bad_csv_is_refused_whole_with_each_line_named(partitioned, aapl, tmp_path):
    bad = CSV.replace("AAPL;MSFT,0.25", "AAPL;TSLA,1.5").replace("Reuters,Quiet", ",Quiet")
    bad += "2024-05-13T14:00:00Z,Reuters,Apple beats estimates,again,AAPL,NaN,\n"
    bad += "not-a-date,Reuters,When?,,,0,\n"
    path = write(tmp_path, "bad.csv", bad)
    with pytest.raises(CommandError) as refused:
        ingest(path)
    message = str(refused.value)
    assert "refused bad.csv: 4 bad rows, nothing written" in message
    assert "line 3: sentiment 1.5 outside [-1, 1]; unknown symbol(s) TSLA" in message
    assert "line 4: no source" in message
    assert "line 5: sentiment not a finite number; same source, headline and time as line 2" in (
        message
    )
    assert "line 6: unparseable time in published_at: 'not-a-date'" in message
    assert NewsArticle.objects.count() == 0


def test_a_header_without_headline_is_refused(partitioned, tmp_path):
    path = write(tmp_path, "odd.csv", "time,source,words\n2024-05-13,x,y\n")
    with pytest.raises(CommandError, match="cannot tell where headline is"):
        ingest(path)


def test_json_lines(partitioned, aapl, msft, tmp_path):
    docs = [
        {"ts": "2024-05-13T14:00:00Z", "source": "Dow Jones", "headline": 'Say "hi" \\ bye',
         "symbols": ["AAPL", "MSFT"], "sentiment": -0.5, "body": "line one\nline two"},
        {"ts": "2024-05-13T14:05:00Z", "source": "Dow Jones", "headline": "Second",
         "symbols": "AAPL"},
    ]  # fmt: skip
    path = write(tmp_path, "news.jsonl", "\n".join(json.dumps(d) for d in docs) + "\n\n")
    assert "2 rows read, 2 inserted" in ingest(path)
    first = NewsArticle.objects.get(source="Dow Jones", headline='Say "hi" \\ bye')
    assert first.body == "line one\nline two"
    assert first.symbols == ["AAPL", "MSFT"]
    assert first.sentiment == -0.5


def test_bad_json_lines_are_refused_whole(partitioned, aapl, tmp_path):
    lines = [
        json.dumps({"ts": "2024-05-13T14:00:00Z", "source": "DJ", "headline": "fine"}),
        '{"ts": "2024-05-13T14:00:00Z", "source": "DJ", "headline": ',
        json.dumps({"ts": "soon", "source": "DJ", "headline": "x", "sentiment": "high"}),
        json.dumps([1, 2]),
        json.dumps({"ts": "2024-05-13T14:00:00Z", "source": "DJ", "headline": "y",
                    "symbols": ["ZZZ"]}),
    ]  # fmt: skip
    path = write(tmp_path, "bad.jsonl", "\n".join(lines))
    with pytest.raises(CommandError) as refused:
        ingest(path)
    message = str(refused.value)
    assert "4 bad rows, nothing written" in message
    assert "line 2: not a JSON object" in message
    assert "line 3: unparseable time in ts: 'soon'; unparseable number in sentiment: 'high'" in (
        message
    )
    assert "line 4: not a JSON object" in message
    assert "line 5: unknown symbol(s) ZZZ" in message
    assert NewsArticle.objects.count() == 0


# --- articles in memory (the API's batches) --------------------------------------------------
ARTICLE = {"ts": datetime(2024, 5, 13, 14, tzinfo=UTC), "source": "DJ", "headline": "fine",
           "symbols": ["AAPL"], "sentiment": 0.5}  # fmt: skip


def test_articles_in_memory_load_without_a_file(partitioned, aapl, no_temporary_files):
    second = {**ARTICLE, "headline": 'Say "hi" \\ bye', "body": "line one\nline two"}
    result = ingest_news([ARTICLE, second])
    assert (result.rows_read, result.inserted, result.unchanged) == (2, 2, 0)
    assert NewsArticle.objects.get(headline='Say "hi" \\ bye').body == "line one\nline two"
    assert ingest_news([ARTICLE]).unchanged == 1


def test_a_bad_article_in_memory_is_refused_by_its_row(partitioned, aapl, no_temporary_files):
    articles = [ARTICLE, {**ARTICLE, "headline": "b", "sentiment": 1.5},
                {**ARTICLE, "headline": "c", "symbols": ["ZZZ"]}]  # fmt: skip
    with pytest.raises(IngestRefused) as refused:
        ingest_news(articles, name="the posted articles")
    message = str(refused.value)
    assert message.startswith("refused the posted articles: 2 bad rows, nothing written")
    assert "row 2: sentiment 1.5 outside [-1, 1]" in message
    assert "row 3: unknown symbol(s) ZZZ" in message
    assert refused.value.rows == [(2, "sentiment 1.5 outside [-1, 1]"),
                                  (3, "unknown symbol(s) ZZZ")]  # fmt: skip
    assert NewsArticle.objects.count() == 0


def test_the_api_batch_of_news_writes_no_temporary_file(
    partitioned, aapl, admin_client, no_temporary_files
):
    bad = {**ARTICLE, "ts": ARTICLE["ts"].isoformat(), "symbols": ["ZZZ"]}
    response = admin_client.post("/api/v1/news/", [bad], content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"0": ["unknown symbol(s) ZZZ"]})
    good = {**bad, "symbols": ["AAPL"]}
    response = admin_client.post("/api/v1/news/", good, content_type="application/json")
    assert (response.status_code, response.json()) == (201, {"created": 1, "unchanged": 0})


def test_a_symbol_is_known_if_an_instrument_bore_it_on_the_articles_date(
    partitioned, aapl, tmp_path
):
    """News names symbols as they were: FB in May 2024 is known when the instrument now called
    META bore it then (the security master), and unknown on a date nobody bore it."""
    meta = Instrument.objects.create(symbol="FB", asset_class="equity")
    set_terms(meta.id, date(2024, 6, 1), None, Terms("META", "USD"))
    row = "2024-05-13T14:30:00Z,Reuters,Facebook news,body,FB,0.1,\n"
    header = CSV.splitlines()[0] + "\n"
    assert "1 inserted" in ingest(write(tmp_path, "fb.csv", header + row))
    late = row.replace("2024-05-13", "2024-06-13").replace("Facebook", "Late")
    with pytest.raises(CommandError, match=r"line 2: unknown symbol\(s\) FB"):
        ingest(write(tmp_path, "late.csv", header + late))
