"""``aerogan.atomic.atomic_output``, the atomic-write helper the report (and every other writer) uses: files and
folders appear complete or not at all, nothing temporary is left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from aerogan.atomic import atomic_output


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_file_replaces_target_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.md"
    with atomic_output(target) as tmp:
        assert tmp.name == target.name and not tmp.exists() and tmp.parent.parent == target.parent
        tmp.write_text("one")
    with atomic_output(target) as tmp:
        tmp.write_text("two")
        assert target.read_text() == "one"  # unchanged until the block ends
    assert target.read_text() == "two" and _names(target.parent) == ["report.md"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_suffix_driven_writers_write_the_target_name(tmp_path: Path) -> None:
    target = tmp_path / "arrays.npz"
    with atomic_output(target) as tmp:
        np.savez(tmp, a=np.arange(3))  # np.savez appends .npz to names without it
    assert _names(tmp_path) == ["arrays.npz"] and list(np.load(target)["a"]) == [0, 1, 2]


def test_error_leaves_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_output(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and _names(tmp_path) == ["table.csv"]


def test_folder_is_created_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "tiles"
    with atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("a")
    assert _names(target) == ["a.txt"]
    with atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "b.txt").write_text("b")
        assert _names(target) == ["a.txt"]
    assert _names(target) == ["b.txt"] and _names(tmp_path) == ["tiles"]
    with pytest.raises(ValueError, match="broken"), atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "c.txt").write_text("c")
        raise ValueError("broken")
    assert _names(target) == ["b.txt"] and _names(tmp_path) == ["tiles"]


def test_mismatches_and_empty_output_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("k")
    with pytest.raises(IsADirectoryError, match="out is a folder"), atomic_output(folder) as tmp:
        tmp.write_text("file")
    assert _names(folder) == ["keep.txt"]
    plain = tmp_path / "plain.txt"
    plain.write_text("p")
    with pytest.raises(NotADirectoryError, match="plain.txt exists and is not a folder"), atomic_output(plain) as tmp:
        tmp.mkdir()
    assert plain.read_text() == "p"
    with pytest.raises(FileNotFoundError, match="nothing was written for .*never.txt"), atomic_output(tmp_path / "never.txt"):
        pass
    assert _names(tmp_path) == ["out", "plain.txt"]
