"""The trading fixtures (instrument, accounts, desks), shared with the trading tests."""

from tests.trading.conftest import account, desks, instrument  # noqa: F401
