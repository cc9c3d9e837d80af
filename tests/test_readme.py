"""The README is part of the product: its commands, table and examples must be true."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from webpush_kit.settings import options_markdown

README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def opening_commands() -> list[str]:
    first = README.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in first.strip().splitlines()]


def test_readme_opens_with_exactly_two_commands_demo_then_tests() -> None:
    assert README.index("```sh") < README.index("\n## ")
    demo, tests = opening_commands()
    assert demo.endswith("python -m sample_site")
    assert tests.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [ln for ln in run.splitlines()
                if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    assert commands == [opening_commands()[1]]


def test_settings_table_matches_the_catalogue() -> None:
    table = README.split("<!-- settings-table:start -->\n", 1)[1].split(
        "<!-- settings-table:end -->", 1)[0]
    assert table == options_markdown(), "regenerate with webpush_kit.settings.options_markdown()"


def test_no_unfilled_figures_or_placeholders() -> None:
    assert "FIGURES_" not in README and "TODO" not in README


@pytest.mark.parametrize("block", code_blocks("python"))
def test_python_examples_run(block: str) -> None:
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})
