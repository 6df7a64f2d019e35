"""Loading market-data files (CSV, Parquet) into the bar and tick tables at COPY speed.

``pipeline.ingest_file`` is the entry point, ``pipeline.ingest_rows`` the same road for rows
already in memory (the API's batches); ``ingest_bars`` and ``ingest_ticks`` are its commands.
The engine (reading, staging, progress, refusals) is ``qvp_site.loading``; what is market
data's own lives here: ``layouts`` (header -> roles), ``checks`` (the bar and tick rules, in
SQL), ``writes`` (INSERT or upsert), ``targets`` (what can be loaded into), ``command`` (the
commands' options and summary).
"""
