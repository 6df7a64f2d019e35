"""Risk's periodic job: a risk run after the daily portfolio snapshots (20:05 UTC on
weekdays, see trading/jobs.py), so its metrics read the day's snapshot."""

from qvp_site.scheduler import command_job

command_job("compute-risk", "20 20 * * 1-5", "compute_risk")
