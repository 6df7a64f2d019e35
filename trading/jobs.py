"""Trading's periodic jobs: corporate actions applied to the books, portfolio snapshots.

Snapshots daily, after the US close (20:00 UTC in the demo sessions), on weekdays. Each
snapshot's daily P&L is measured from the account's previous snapshot, so an hourly timetable
would make it an hourly P&L: keep one snapshot a day, or set QVP_SCHEDULE knowing that.
"""

from qvp_site.scheduler import command_job

command_job("snapshot-portfolios", "5 20 * * 1-5", "snapshot_portfolios")
# Corporate actions, just after the ex moment (00:00 UTC of the ex-date): the positions held
# then are the ones the actions apply to (trading/books.py). A session open across 00:00 UTC
# (Tokyo, Sydney) may trade ex first: those positions are left out and listed.
command_job("apply-actions", "5 0 * * *", "apply_actions")
