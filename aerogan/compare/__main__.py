"""``python -m aerogan.compare``."""

from aerogan.compare import main

main()
