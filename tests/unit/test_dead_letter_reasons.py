"""``parwatch dead-letters``: which reasons can be replayed is said once (``NEVER_REPLAYABLE``),
and the help texts and the replay's refusal all come from it."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from parwatch.cli import build_parser
from parwatch.commands.dead_letters import NEVER_REPLAYABLE, REPLAYABLE
from schemas.errors import Reason


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return re.sub(r"\s+", " ", out.getvalue())


def test_every_reason_is_replayable_or_never_with_its_why() -> None:
    assert set(REPLAYABLE) | {r.value for r in NEVER_REPLAYABLE} == {r.value for r in Reason}
    assert not set(REPLAYABLE) & {r.value for r in NEVER_REPLAYABLE}


@pytest.mark.parametrize("argv", [("dead-letters",), ("dead-letters", "replay")])
def test_help_lists_the_reasons_from_the_one_mapping(argv: tuple[str, ...]) -> None:
    text = _help(*argv)
    assert f"Replayable reasons: {', '.join(REPLAYABLE)}." in text
    for reason, why in NEVER_REPLAYABLE.items():
        assert f"{reason.value} ({why})" in text
