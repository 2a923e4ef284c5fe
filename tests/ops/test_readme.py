"""The README stays true: every setting is in its configuration table with its default."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from schemas.settings import Settings, env_name

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `(CONVEYOR_[A-Z0-9_]+)` \|", text, flags=re.MULTILINE))
    fields = msgspec.structs.fields(Settings)
    assert documented == {env_name(f.name) for f in fields}
    for f in fields:
        if f.default not in ("", None):
            row = next(
                line for line in text.splitlines() if line.startswith(f"| `{env_name(f.name)}`")
            )
            if isinstance(f.default, bool):
                shown = str(f.default).lower()  # as the variable is written
            else:
                shown = str(
                    int(f.default)
                    if isinstance(f.default, float) and f.default.is_integer()
                    else f.default
                )
            assert f"`{shown}`" in row, (f.name, row)


def test_the_two_commands_come_first() -> None:
    head = README.read_text().split("## ", 1)[0]
    assert "make run" in head
    assert "make test" in head
