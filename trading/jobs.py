"""Trading's periodic jobs: corporate actions applied to the books, portfolio snapshots,
transaction costs (after the close, and what was queued for restatement every five minutes).

Snapshots daily, after the US close (20:00 UTC in the demo sessions), on weekdays. Each
snapshot's daily P&L is measured from the account's previous snapshot, so an hourly timetable
would make it an hourly P&L: keep one snapshot a day, or set QVP_SCHEDULE knowing that.
"""

from qvp_site.scheduler import command_job

command_job("snapshot-portfolios", "5 20 * * 1-5", "snapshot_portfolios")
# Corporate actions, hourly: an action applies from its ex moment, the earlier of 00:00 UTC
# and its exchange's midnight (15:00 UTC the day before for Tokyo), so the books go ex within
# the hour the prices do, before the day's snapshot. An action applies to the position held at
# its ex moment: one that traded ex before the job ran is split or paid on the shares it held
# then, and replayed (trading/books.py). A run with nothing due looks at nothing old.
command_job("apply-actions", "5 * * * *", "apply_actions")
# Transaction costs, after the close and the day's snapshot: the last two days' executions,
# so that yesterday's fills get their one-day markouts and a bust or a market-data revision
# of either day restates them (trading/tca.py). On demand: manage.py tca --refresh.
command_job("tca-refresh", "30 20 * * 1-5", "tca", "--refresh")
# Restatement between closes: what busts, corrections, market-data revisions and corporate
# actions queued (trading_tcapending; a bust's row goes at once, in its own transaction), every
# five minutes in the week. A run with an empty queue reads one empty table.
command_job("tca-pending", "*/5 * * * 1-5", "tca", "--pending")
