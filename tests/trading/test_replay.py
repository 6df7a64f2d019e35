from decimal import Decimal as D

from trading.replay import replay


def test_replay_by_hand():
    # 4 @ 100 and 6 @ 110 average 106; selling 15 @ 120 realizes 10 x 14, leaves 5 short @ 120.
    assert replay([(D(4), D(100)), (D(6), D(110)), (D(-15), D(120))]) == (D(-5), D(120), D(140))


def test_replay_rounds_average_cost_to_twelve_places():
    qty, avg, _ = replay([(D(1), D(1)), (D(2), D(2))])
    assert (qty, avg) == (D(3), D("1.666666666667"))


def test_replay_multiplier_scales_realized_pnl_only():
    assert replay([(D(2), D("3.5")), (D(-2), D(4))], multiplier=D(100)) == (D(0), D(0), D(100))
