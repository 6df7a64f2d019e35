"""What ``pandas.merge_asof`` answers, the reference the as-of join's tests compare with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd


def matches(
    left: Sequence[tuple[int, int, datetime]],
    right: Sequence[tuple[int, int, datetime, int]],
    *,
    direction: str = "backward",
    tolerance: timedelta | None = None,
    allow_exact: bool = True,
    offset: timedelta | None = None,
) -> dict[int, int | None]:
    """Left (id, instrument, time) -> the id of the right (id, instrument, time, sequence)
    matched by instrument, the right rows ordered by time then sequence (None: no match)."""
    shift = offset or timedelta(0)
    left_frame = pd.DataFrame(
        {
            "left_id": [row[0] for row in left],
            "instrument": [row[1] for row in left],
            "ts": pd.to_datetime([row[2] + shift for row in left], utc=True),
        },
        columns=["left_id", "instrument", "ts"],
    ).sort_values("ts", kind="stable")
    right_frame = pd.DataFrame(
        {
            "right_id": [row[0] for row in right],
            "instrument": [row[1] for row in right],
            "ts": pd.to_datetime([row[2] for row in right], utc=True),
            "sequence": [row[3] for row in right],
        },
        columns=["right_id", "instrument", "ts", "sequence"],
    ).sort_values(["ts", "sequence"], kind="stable")
    for frame in (left_frame, right_frame):
        frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
        frame["instrument"] = frame["instrument"].astype("int64")
    merged = pd.merge_asof(
        left_frame,
        right_frame,
        on="ts",
        by="instrument",
        direction=direction,
        tolerance=pd.Timedelta(tolerance) if tolerance is not None else None,
        allow_exact_matches=allow_exact,
    )
    return {
        int(row.left_id): (None if pd.isna(row.right_id) else int(row.right_id))
        for row in merged.itertuples()
    }
