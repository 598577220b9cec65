"""The README opens with the two commands a newcomer types, and .ci/run runs exactly those."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_setup_and_test_commands() -> None:
    setup, tests = _first_block()[:2]
    assert setup.endswith("aerogan fit --config configs/quickstart.yaml")
    assert "pytest" in tests


def test_ci_runs_the_readme_commands() -> None:
    setup, tests = _first_block()[:2]
    install = setup.split(" && aerogan fit")[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci, "the CI install differs from the README's"
    assert tests in ci, "the CI test command differs from the README's"
