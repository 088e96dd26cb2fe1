"""Progress off a terminal: bars hidden (tqdm disable=None), training logs lines with the time left."""

from __future__ import annotations

import io
import logging

import pytest

from mira.progress import bar_disabled, format_eta, on_terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_detection_and_bar_switch():
    assert on_terminal(_Terminal()) and not on_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not on_terminal(closed)
    assert bar_disabled(True) is None and bar_disabled(False) is True


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (12.4, "12 s"), (245, "4 min 05 s"), (3720, "1 h 02 min"), (-3, "0 s")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


def test_training_off_a_terminal_logs_steps_with_time_left(tmp_path, caplog, monkeypatch):
    from helpers_training import tiny_config

    from mira.training.trainer import Trainer

    monkeypatch.setattr("mira.training.trainer.on_terminal", lambda stream=None: False)
    config = tiny_config(tmp_path, max_steps=4, log_every_steps=2, val_every_steps=0, lpips_weight=0.0)
    with caplog.at_level(logging.INFO, logger="mira.training"):
        Trainer(config).fit()
    lines = [r.getMessage() for r in caplog.records if "samples/s" in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == ["step 2/4", "step 4/4"], lines
    assert all(line.endswith("left") for line in lines)
