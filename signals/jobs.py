"""Signals' periodic jobs: performance of every active agent kept current, signals fused.

Performance hourly over the last 7 and 30 days (a signal counts once its horizon is over, so
an hour's delay is nothing); fusion every 15 minutes, as the agents emit.
"""

from qvp_site.scheduler import command_job

command_job(
    "signal-performance", "7 * * * *", "signal_performance", "--all", "--days", "7", "--days", "30"
)
command_job("fuse-signals", "*/15 * * * *", "fuse_signals")
