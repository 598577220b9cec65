"""``python -m aerogan.report RUN_DIR [RUN_DIR ...] --out OUT``."""

from aerogan.report.cli import main

main()
