"""The README's two fresh-machine commands are the ones CI and residents run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_opens_with_a_run_command_and_a_test_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    run, test = readme_commands()[:2]
    assert text.index(run) < text.index("\n## ")  # both come before any section
    assert run.endswith("yimen run") and "pip install" in run
    assert "pytest" in test and "'.[test]'" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test = readme_commands()[1]
    assert test in ci.splitlines()
