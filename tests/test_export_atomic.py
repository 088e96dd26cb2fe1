"""Atomic writes: finished files get the usual permissions, failures leave nothing behind."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mira.export.atomic import atomic_output, write_json_atomic


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_finished_files_get_0666_minus_the_umask_not_mkstemps_0600(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_json_atomic({"a": 1}, tmp_path / "result.json")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "result.json").stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_output(target) as temp_path:
            temp_path.write_text("half")
            raise RuntimeError("mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(OSError, match="no data"):
        with atomic_output(target):
            pass  # nothing written
    assert target.read_text() == "old"
