"""Cross-cutting database machinery: the embedded server, the time-series engines, buckets.

Only this package knows whether TimescaleDB is present; everything else asks it.
"""
