"""The site's periodic jobs: time-series maintenance, and base backups where WAL is archived
(a base backup is where a point-in-time restore starts; without the archive it reaches only
its own moment, which `backup` does better)."""

from django.conf import settings

from qvp_site.scheduler import command_job

command_job("maintain", "*/15 * * * *", "maintain")
command_job("maintain-daily", "30 0 * * *", "maintain", "--daily")
command_job("maintain-weekly", "0 2 * * 0", "maintain", "--weekly")
command_job(
    "base-backup", "0 1 * * *" if settings.QVP_WAL_ARCHIVE_DIR else "off", "backup", "--base"
)
