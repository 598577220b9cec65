"""``python -m aerogan.bench --out results.json`` (see :mod:`aerogan.bench`)."""

from aerogan.bench.suite import main

if __name__ == "__main__":
    main()
