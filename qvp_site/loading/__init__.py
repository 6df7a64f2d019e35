"""The loading engine every app's file (or rows-in-memory) loads share, at COPY speed.

It knows files and staging tables, not what they hold: ``readers`` (file or rows -> CSV bytes),
``layout`` (the staging table's columns and the roles they carry), ``staging`` (COPY into a
TEMP table, typed, with the line each row came from), ``checks`` (the rejected rows' summary),
``refusals`` (the one refusal of a load, naming its bad rows) and ``progress`` (a bar, or
none). What a load means lives with its app: market data's layouts and bar rules in
``marketdata.ingest``, executions in ``trading.imports``, news in ``signals.news_ingest``.
"""
