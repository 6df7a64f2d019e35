"""Loading market-data files (CSV, Parquet) into the bar and tick tables at COPY speed.

``pipeline.ingest_file`` is the entry point, ``pipeline.ingest_rows`` the same road for rows
already in memory (the API's batches); ``ingest_bars`` and ``ingest_ticks`` are its commands.
The modules follow the data: ``readers`` (file or rows -> CSV bytes), ``layouts`` (header ->
roles), ``staging`` (COPY into a TEMP table), ``checks`` (bad rows, in SQL), ``writes``
(INSERT or upsert), ``targets`` (what can be loaded into).
"""
