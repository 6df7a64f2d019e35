"""Corporate actions apply to the position held at their ex moment, whenever they are applied
(trading/sql/actions/0014.sql), and a position replays its entries at their ex moments
(trading/sql/books/0014.sql): a position whose shares traded ex before the daily job ran, or
before the action was learnt, is split (or paid) by it instead of being left out. Unapplied,
the functions of trading/sql/actions/0013.sql and trading/sql/books/0013.sql come back."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

DROP_ACTIONS = (
    read_sql("trading", "actions", "0013")
    + """
DROP FUNCTION IF EXISTS trading_apply_one_action(bigint, bigint, bigint, timestamptz);
DROP FUNCTION IF EXISTS trading_apply_action_set(bigint);
DROP FUNCTION IF EXISTS trading_action_applied(bigint, bigint, text, date);
DROP FUNCTION IF EXISTS trading_action_blocked(bigint, bigint, bigint, text, timestamptz);
DROP FUNCTION IF EXISTS trading_may_hold(bigint, bigint, numeric, timestamptz);
DROP FUNCTION IF EXISTS trading_position_at(bigint, bigint, timestamptz, numeric);
DROP FUNCTION IF EXISTS trading_entry_after(bigint, bigint, timestamptz, integer);
DROP FUNCTION IF EXISTS trading_traded_since(bigint, bigint, timestamptz);
"""
)
DROP_BOOKS = (
    read_sql("trading", "books", "0013")
    + """
DROP FUNCTION IF EXISTS trading_replay_through(bigint, bigint, bigint, timestamptz, numeric);
DROP FUNCTION IF EXISTS trading_placed_at(bigint);
"""
)


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0013_ex_moment_by_exchange"),
        ("trading", "0013_corporate_actions"),
    ]

    operations = [
        migrations.RunSQL(read_sql("trading", "books", "0014"), DROP_BOOKS),
        migrations.RunSQL(read_sql("trading", "actions", "0014"), DROP_ACTIONS),
        # What the books ask of a position's executions by time: traded since an ex moment,
        # existed before it, a bust or correction across it (trading/sql/actions/0014.sql).
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                fields=["account", "instrument", "executed_at"],
                name="execution_position_time_idx",
            ),
        ),
        migrations.AlterField(
            model_name="actionentry",
            name="ex_at",
            field=models.DateTimeField(
                help_text="the ex-date's first moment: the earlier of 00:00 UTC and midnight"
                " at the instrument's exchange",
                verbose_name="ex moment",
            ),
        ),
    ]
