import pytest
from django.core.exceptions import ImproperlyConfigured

from qvp_site.environment import Env


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("QVP_T_BOOL", "maybe")
    monkeypatch.setenv("QVP_T_YES", "yes")
    monkeypatch.setenv("QVP_T_CHOICE", "sometimes")
    monkeypatch.setenv("QVP_T_INT", "-3")
    monkeypatch.setenv("QVP_T_WORDS", "sixty")
    return Env()


def test_booleans_are_strict(env):
    assert env.bool("QVP_T_YES") is True
    assert env.bool("QVP_T_UNSET", default=False) is False
    with pytest.raises(ImproperlyConfigured, match="QVP_T_BOOL='maybe' is not a boolean"):
        env.bool("QVP_T_BOOL")


def test_a_required_boolean_says_which(env):
    with pytest.raises(ImproperlyConfigured, match="QVP_T_UNSET"):
        env.bool("QVP_T_UNSET")


def test_choices_name_the_variable_and_the_options(env):
    with pytest.raises(ImproperlyConfigured, match="QVP_T_CHOICE='sometimes' must be one of auto"):
        env.choice("QVP_T_CHOICE", ("auto", "on", "off"), default="auto")
    assert env.choice("QVP_T_UNSET", ("auto", "on"), default="auto") == "auto"


def test_positive_int(env):
    with pytest.raises(ImproperlyConfigured, match="QVP_T_INT=-3 must be a positive integer"):
        env.positive_int("QVP_T_INT", default=1)


def test_integers_name_the_variable(env):
    with pytest.raises(ImproperlyConfigured, match="QVP_T_WORDS: 'sixty' is not an integer"):
        env.int("QVP_T_WORDS", default=60)
    assert env.int("QVP_T_UNSET", default=60) == 60
