"""``aerogan report``: figures and a markdown report from recorded runs, split by concern.

* :mod:`~aerogan.report.runs`: finding and loading run folders (:class:`Run`, :func:`find_runs`, :func:`load_run`);
* :mod:`~aerogan.report.figures`: one function per plot;
* :mod:`~aerogan.report.tables`: tables of measured numbers (final drift, the theory runs' setting);
* :mod:`~aerogan.report.claims`: one function per claim of the theory, each returning a :class:`Claim`;
* :mod:`~aerogan.report.study_section`: the epochs-to-threshold study;
* :mod:`~aerogan.report.cli`: :func:`main`, the ``aerogan report`` command (also ``python -m aerogan.report``).
"""

from aerogan.report.claims import Claim, Verdict
from aerogan.report.cli import build_report, main
from aerogan.report.runs import Run, find_runs, load_run

__all__ = ["Claim", "Run", "Verdict", "build_report", "find_runs", "load_run", "main"]
