"""``python -m aerogan.experiments.worker SPEC_JSON KEY``: one run of the worker pool, in its own process."""

from __future__ import annotations

import sys

from aerogan.experiments.execute import execute
from aerogan.experiments.spec import RunSpec


def main(argv: list[str] | None = None) -> None:
    spec_json, key = (sys.argv[1:] if argv is None else argv)[:2]
    execute(RunSpec.from_json(spec_json), key)


if __name__ == "__main__":
    main()
