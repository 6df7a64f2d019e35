"""The site's periodic jobs: time-series maintenance."""

from qvp_site.scheduler import command_job

command_job("maintain", "*/15 * * * *", "maintain")
command_job("maintain-daily", "30 0 * * *", "maintain", "--daily")
command_job("maintain-weekly", "0 2 * * 0", "maintain", "--weekly")
