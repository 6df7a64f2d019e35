"""Vectors' periodic job: embed the windows and days the bars have added since the last run.

Hourly at a quarter past: windows close every 15 minutes, and the run is incremental."""

from qvp_site.scheduler import command_job

command_job("build-embeddings", "15 * * * *", "build_embeddings", "--no-progress")
