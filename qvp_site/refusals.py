"""A write refused by a named rule of the domain, before the database would refuse it.

Domain code (``trading.books``, say) raises ``RuleRefusal`` with the rule's name, the same name
the database's constraint or trigger carries, so that every door shows one refusal: the API
answers it ``{"detail", "rule"}`` (``qvp_site.api.errors``), the admin as a message naming the
rule. It imports no web framework: commands raise and catch it too.
"""

from __future__ import annotations


class RuleRefusal(Exception):
    """``message`` says what was refused and why; ``rule`` names the rule; ``conflict`` says
    the write conflicts with a record's state (a second bust) rather than being bad data."""

    def __init__(self, message: str, rule: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.conflict = conflict
