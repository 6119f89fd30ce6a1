"""The command line fed crafted files in a fresh process under memory and CPU limits (tests/hardening_cli.py):
a refused input ends in exit status 2 with one error line naming it, no traceback, within its memory bound."""

from __future__ import annotations

import pytest
from hardening_cli import CASES, record, run_case

FAST = [c for c in CASES if c.fast]
SLOW = [c for c in CASES if not c.fast]


def _check(case, tmp_path) -> None:
    result = run_case(case, tmp_path)
    record(result)
    assert not result["problems"], f"{case.name}: {result['problems']} (exit {result['exit']}: {result['message']})"


@pytest.mark.parametrize("case", FAST, ids=[c.name for c in FAST])
def test_the_cli_refuses_crafted_inputs_with_a_message(case, tmp_path):
    _check(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[c.name for c in SLOW])
def test_the_cli_refuses_crafted_inputs_with_a_message_every_case(case, tmp_path):
    _check(case, tmp_path)
