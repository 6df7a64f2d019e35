"""Lists in Apache Arrow, Parquet and CSV besides JSON: every row of a time range, streamed.

- ``formats``: the formats, their media types and writers, DRF's renderers for them;
- ``columns``: what a list reads, as one SQL statement, and each column's Arrow type;
- ``reader``: the rows straight into Arrow by the ADBC driver, as the request's user;
- ``views``: ``BulkFormats``, the mixin that gives a list's viewset the formats.
"""

from qvp_site.api.bulk.views import BulkFormats

__all__ = ["BulkFormats"]
