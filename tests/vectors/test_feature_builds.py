"""Feature builds that can be repeated: ``build_embeddings`` reads its bars as known at one
moment and records it, the code's version and the windows it embedded; ``--repeat BUILD``
computes those windows again from the same bars after a correction and finds every feature
identical, while the bars as known now give other features.

Transactional: each load's rows are known from its transaction, so the loads and the build
must commit apart for a correction to be later knowledge than the build."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketdata import demo
from qvp_site.db import partitions
from tests.knowledge import between_commits as _pause
from tests.vectors.bar_files import bars_csv, ingest_spy
from vectors import embeddings
from vectors.models import FeatureBuild, FeatureEmbedding

pytestmark = pytest.mark.django_db(transaction=True)

END = date(2024, 5, 17)
SESSIONS = 3  # enough for a few 390-minute windows closing every 15 minutes


@pytest.fixture
def corrected_after_a_build(tmp_path):
    """SPY's bars loaded, the embeddings built, then one bar inside the last window corrected
    by a later file (a real revision). Returns the build and the bar's index."""
    minute = demo.generate(demo.DEMO_SYMBOLS["SPY"], END, SESSIONS, seed=3)
    partitions.prepare_load("marketdata_minutebar", *demo.time_range(minute))
    ingest_spy(tmp_path, "first.csv", bars_csv(minute, {}))
    _pause()
    out = StringIO()
    call_command("build_embeddings", "--symbol", "SPY", "--no-progress", stdout=out)
    build = FeatureBuild.objects.get()
    assert f"Build {build.pk}" in out.getvalue()
    assert build.code_version
    index = len(minute.ts) - 5  # inside the newest windows
    close = float(minute.close[index]) * 1.05
    assert "1 revised" in ingest_spy(tmp_path, "fixed.csv", bars_csv(minute, {index: close}))
    return build


def test_a_build_repeated_after_a_correction_is_identical(corrected_after_a_build):
    build = corrected_after_a_build
    _first, _last, count = next(iter(build.windows.values()))
    assert count == FeatureEmbedding.objects.filter(feature_set=build.feature_set).count() > 0
    assert embeddings.repeat(build) == []
    out = StringIO()
    call_command("build_embeddings", "--repeat", str(build.pk), stdout=out)
    assert "every window identical" in out.getvalue()


def test_the_bars_as_known_now_differ_and_the_repeat_says_so(corrected_after_a_build):
    """The same windows read from the bars as known now (after the correction) differ: the
    repeat's comparison can fail, and says where."""
    build = corrected_after_a_build
    build.known_at = build.known_at.replace(year=build.known_at.year + 1)
    build.save()
    differences = embeddings.repeat(build)
    assert differences
    assert all(line.startswith("SPY ") and "raw features differ" in line for line in differences)
    with pytest.raises(CommandError, match="is not repeated"):
        call_command("build_embeddings", "--repeat", str(build.pk), stdout=StringIO())


def test_an_unknown_build_is_named(db):
    with pytest.raises(CommandError, match="--repeat: no feature build 999"):
        call_command("build_embeddings", "--repeat", "999", stdout=StringIO())
