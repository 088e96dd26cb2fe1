"""One command-line vocabulary across MIRA's tools: names, help texts, examples, old spellings, fast --help.

Also the newcomer's error paths that need no model: offline text mode fails at once, rembg's one-off
compilation is announced, the README's smoke config checkpoints sensibly and random LPIPS is labelled.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from mira import cli_options, hub
from mira.cli_options import HelpFormatter, example_commands
from mira.config import ConfigError, MiraConfig, load_config
from mira.config_help import KEY_HELP

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tools() -> dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[list[str]], object]]]:
    """Tool name (as a command line names it) -> (its parser, the function that parses and checks argv)."""
    from mira import convert, evaluate, fit
    from mira.app import __main__ as app
    from mira.data import cli as data_cli
    from mira.inference import cli as inference_cli
    from mira.training import cli as training_cli

    def parse_data(argv: list[str]) -> argparse.Namespace:
        parser = data_cli.build_parser()
        args = parser.parse_args(argv)
        cli_options.require(parser, args, "--output_path")
        return args

    return {
        "test.py": (inference_cli.build_parser, lambda argv: inference_cli.parse_settings(argv)),
        "train_ddp.py": (training_cli.build_parser, training_cli.parse_args),
        "load_input_data.py": (data_cli.build_parser, parse_data),
        "mira.fit": (fit.build_parser, fit.parse_args),
        "mira.evaluate": (evaluate.build_parser, evaluate.parse_args),
        "mira.convert": (convert.build_parser, convert.parse_args),
        "mira.app": (app.build_parser, lambda argv: app.build_parser().parse_args(argv)),
    }


TOOLS = _tools()
# The shared names (mira/cli_options.py) and the tools that must use them.
VOCABULARY = {
    "--checkpoint_path": ("test.py", "mira.evaluate", "mira.convert", "mira.app"),
    "--config_path": ("test.py", "train_ddp.py", "mira.fit", "mira.evaluate", "mira.app"),
    "--output_path": ("test.py", "load_input_data.py", "mira.fit", "mira.evaluate", "mira.convert", "mira.app"),
    "--data_dir": ("train_ddp.py", "mira.fit", "mira.evaluate"),
    "--set": ("train_ddp.py", "mira.fit"),
    "--device": ("test.py", "train_ddp.py", "mira.fit", "mira.evaluate", "mira.app"),
    "--no_progress": ("test.py", "load_input_data.py", "mira.fit", "mira.evaluate"),
    "--num_frames": ("test.py", "mira.fit", "mira.app"),
    "--export_mesh": ("test.py", "mira.evaluate"),
}
# Old spellings that must keep working: tool -> (argv, {namespace field: expected value}).
ALIASES = {
    "mira.evaluate": (["--checkpoint", "c", "--data", "d", "--out", "o", "--save_meshes", "--quiet"],
                      {"checkpoint_path": "c", "data_dir": "d", "output_path": "o", "export_mesh": True,
                       "progress": False}),
    "mira.fit": (["--data", "d", "--out", "o", "--config", "configs/tiny.json", "--video_frames", "7",
                  "--video_elevation", "5", "--quiet"],
                 {"data_dir": "d", "output_path": "o", "config_path": "configs/tiny.json", "num_frames": 7,
                  "elevation": 5.0, "progress": False}),
    "load_input_data.py": (["--synthetic", "2", "--output_dir", "o"], {"output_path": "o"}),
    "mira.app": (["--output_dir", "o"], {"output_path": "o"}),
    "test.py": (["--input", "x.png", "--target_faces", "100"], {"mesh_target_faces": 100}),
}
# Options whose values are files or folders the command reads (they must exist, or be written by an example).
INPUT_OPTIONS = ("--checkpoint_path", "--config_path", "--input", "--data_dir", "--init_from", "--objects",
                 "--update_config")
OUTPUT_OPTIONS = ("--output_path", "--output_dir", "--model_save_path")
HUB_IDS = re.compile(r"^(zxhezexin|stabilityai)/[\w.-]+$")


def _documented_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


# ---------------------------------------------------------------------------- help texts
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_option_has_a_meaning_and_shows_its_default(tool):
    parser = TOOLS[tool][0]()
    assert parser.formatter_class is HelpFormatter and parser.epilog, f"{tool}: MIRA's help style with examples"
    formatter = parser._get_formatter()
    exclusive = {a for group in parser._mutually_exclusive_groups for a in group._group_actions}
    for action in _documented_options(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help.strip()) > 5, f"{tool} {name}: no help text"
        if not action.option_strings or action.nargs == 0 or action.required or action in exclusive:
            continue  # positionals, flags, required options, alternatives of one choice: no default to show
        shown = formatter._get_help_string(action).lower()
        assert "default" in shown or "(required" in shown, f"{tool} {name}: the help shows no default"
    parser.format_help()  # every help string formats (no stray %)


def test_train_ddp_help_gives_every_config_key_its_meaning():
    assert set(MiraConfig().flat_keys()) <= set(KEY_HELP), "a config key without a line in mira/config_help.py"
    assert all(text and "\n" not in text for text in KEY_HELP.values())
    text = " ".join(TOOLS["train_ddp.py"][0]().format_help().split())
    for key in MiraConfig().flat_keys():
        assert f"--{key} " in text and " ".join(KEY_HELP[key].split()) in text, key
    assert "(default: 0.0004)" in text and "see mira/config.py for their meaning" not in text


@pytest.mark.parametrize("option", sorted(VOCABULARY))
def test_the_same_thing_has_the_same_name(option):
    for tool in VOCABULARY[option]:
        parser = TOOLS[tool][0]()
        assert option in parser._option_string_actions, f"{tool} has no {option}"
        assert parser._option_string_actions[option].help is not argparse.SUPPRESS, f"{tool}: {option} is hidden"


@pytest.mark.parametrize("tool", sorted(ALIASES))
def test_old_spellings_still_work_and_are_hidden(tool, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    argv, expected = ALIASES[tool]
    parser, parse = TOOLS[tool]
    args = parse(argv)
    for field, value in expected.items():
        assert getattr(args, field) == value, (tool, field)
    without_examples = parser()
    without_examples.epilog = None
    help_text = without_examples.format_help()
    for old in (token for token in argv if token.startswith("--")):
        if parser()._option_string_actions[old].help is argparse.SUPPRESS:
            assert not re.search(re.escape(old) + r"(?![\w])", help_text), f"{tool}: {old} is listed by --help"


def test_required_options_are_required_under_any_spelling(capsys):
    for tool, argv in (("mira.evaluate", ["--checkpoint_path", "c", "--data_dir", "d"]),
                       ("mira.fit", ["--output_path", "o"]), ("mira.convert", ["src"])):
        with pytest.raises(SystemExit):
            TOOLS[tool][1](argv)
        assert "required" in capsys.readouterr().err


def test_convert_takes_named_or_positional_paths(capsys):
    from mira.convert import parse_args

    assert parse_args(["--checkpoint_path", "a", "--output_path", "b"])[:2] == ("a", Path("b"))
    assert parse_args(["a", "b"])[:2] == ("a", Path("b"))
    with pytest.raises(SystemExit):
        parse_args(["a", "b", "--checkpoint_path", "c"])
    assert "not both" in capsys.readouterr().err


def test_set_overrides_a_config_key_with_its_type():
    from mira.fit import load_cli_config
    from mira.training.cli import parse_args

    config, _ = parse_args(["--config_path", "configs/tiny.json", "--set", "batch_size=3", "--set", "compile=yes",
                            "--set", "box_max=1,1.5,2"])
    assert config.train.batch_size == 3 and config.train.compile is True
    assert config.renderer.box_max == [1.0, 1.5, 2.0]
    with pytest.raises(ConfigError, match="disagree"):
        parse_args(["--config_path", "configs/tiny.json", "--batch_size", "2", "--set", "batch_size=3"])
    with pytest.raises(ConfigError, match="unknown key 'batch_sise'"):
        parse_args(["--config_path", "configs/tiny.json", "--set", "batch_sise=3"])
    fit_config = load_cli_config(str(REPO_ROOT / "configs" / "tiny.json"), ["rendering_samples_per_ray=12"])
    assert fit_config.renderer.rendering_samples_per_ray == 12


# ---------------------------------------------------------------------------- examples
def _split_command(command: str) -> tuple[str | None, list[str]]:
    """(tool name, its arguments) of one example command line; tool None for other programs."""
    tokens = shlex.split(command)
    if tokens[0] == "torchrun":
        tokens = ["python"] + tokens[next(i for i, t in enumerate(tokens) if t.endswith("train_ddp.py")):]
    if len(tokens) > 2 and tokens[1] == "-m":
        return (tokens[2] if tokens[2] in TOOLS else None), tokens[3:]
    return (tokens[1] if tokens[1] in TOOLS else None), tokens[2:]


def _values(args: list[str], options: tuple[str, ...]) -> list[str]:
    """The values given to ``options`` in ``args`` (several for nargs='+' options such as --input)."""
    values = []
    for index, token in enumerate(args):
        if token in options:
            following = args[index + 1:]
            end = next((i for i, t in enumerate(following) if t.startswith("--")), len(following))
            values += following[:end] if token in ("--input", "--objects") else following[:1]
    return values


def _all_examples() -> list[tuple[str, str]]:
    return [(tool, command) for tool, (parser, _) in sorted(TOOLS.items()) for command in example_commands(parser().epilog)]


def _produced_paths() -> set[str]:
    """Folders the examples (of any tool) write: an example may read what another one makes."""
    produced = set()
    for _, command in _all_examples():
        tool, args = _split_command(command)
        produced.update(_values(args, OUTPUT_OPTIONS))
        if tool == "mira.convert" and len(args) >= 2 and not args[0].startswith("--"):
            produced.add(args[1])
    return produced


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_examples_parse_and_name_paths_that_exist(tool, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    produced = _produced_paths()
    examples = example_commands(TOOLS[tool][0]().epilog)
    assert len(examples) >= 2, f"{tool}: the help shows fewer than two examples"
    for command in examples:
        name, args = _split_command(command)
        if name is None:  # another program that makes what the next example reads
            continue
        assert name == tool, f"{tool}'s help shows an example of {name}: {command}"
        TOOLS[tool][1](args)  # parses (SystemExit, ConfigError otherwise)
        inputs = [] if "text" in args else _values(args, INPUT_OPTIONS)
        if tool == "mira.convert" and args and not args[0].startswith("--"):
            inputs.append(args[0])
        for value in inputs:
            exists = Path(value).exists() or any(Path(p).exists() for p in REPO_ROOT.glob(value) if "*" in value)
            made = any(value == p or value.startswith(p.rstrip("/") + "/") for p in produced)
            assert exists or made or HUB_IDS.match(value), f"{tool} example names a missing path {value!r}: {command}"


def test_example_commands_join_continuations_and_drop_comments():
    epilog = "examples:\n  python test.py --input a.png \\\n      --export_mesh  # a comment\ntext\n  torchrun x\n"
    assert example_commands(epilog) == ["python test.py --input a.png --export_mesh", "torchrun x"]


def test_readme_commands_parse(monkeypatch):
    """Every README line that runs a MIRA tool parses with that tool's parser (placeholders are fine)."""
    monkeypatch.chdir(REPO_ROOT)
    readme = (REPO_ROOT / "README.md").read_text()
    commands = [part.strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
                for line in block.replace("\\\n", " ").splitlines() for part in line.split("&&")]
    checked = 0
    for command in commands:
        command = re.sub(r"^[A-Z_]+=\S+ ", "", command.split("  #")[0].strip())  # VAR=value prefix, comment
        if not command.startswith(("python ", "torchrun ")):
            continue
        tool, args = _split_command(command)
        config = _values(args, ("--config_path",))
        if tool is None or config and not Path(config[0]).is_file():  # a config the user makes (C, J ...)
            continue
        TOOLS[tool][1]([a for a in args if a != "..."])
        checked += 1
    assert checked >= 15


# ---------------------------------------------------------------------------- fast --help
@pytest.mark.parametrize("command", [["train_ddp.py"], ["load_input_data.py"], ["-m", "mira.fit"],
                                     ["-m", "mira.evaluate"], ["-m", "mira.convert"]])
def test_help_imports_no_pytorch(command):
    """--help answers without importing PyTorch (train_ddp.py took 8.7 s to print it)."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{command[-1]!r}, '--help']\n"
            "try:\n"
            f"    runpy.{'run_module' if command[0] == '-m' else 'run_path'}({command[-1]!r}, run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout and result.stdout.rstrip().endswith("TORCH False"), result.stdout[-500:]
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------------------- offline, first run, smoke training
def test_offline_text_mode_fails_at_once_with_one_message(monkeypatch):
    from mira.inference.errors import WeightsNotFoundError
    from mira.inference.text_to_image import TextToImage

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as error:
        TextToImage("nobody/no-such-text-model", "cpu")
    assert time.monotonic() - start < 3.0
    message = str(error.value)
    assert "HF_HUB_OFFLINE is set" in message and "hf download nobody/no-such-text-model" in message
    assert "--text_model" in message and "Retrying" not in message


def test_unreachable_hub_is_found_at_once(monkeypatch):
    from mira.inference.errors import WeightsNotFoundError
    from mira.inference.text_to_image import TextToImage

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *hub.PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    assert "127.0.0.1 is unreachable" in hub.hub_offline_reason()
    with pytest.raises(WeightsNotFoundError, match="cannot be downloaded now: 127.0.0.1 is unreachable"):
        TextToImage("nobody/no-such-text-model", "cpu")
    assert time.monotonic() - start < 5.0
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub.hub_offline_reason() is None  # behind a proxy the download itself decides


def test_text_mode_checks_the_text_model_before_loading_the_3d_model(tmp_path, monkeypatch, capsys):
    from mira.inference.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    code = main(["--mode", "text", "--input", "a chair", "--text_model", "nobody/no-such-text-model",
                 "--checkpoint_path", str(tmp_path / "no_checkpoint_here"), "--output_path", str(tmp_path / "o"),
                 "--no_progress"])
    err = capsys.readouterr().err
    assert code == 1 and time.monotonic() - start < 5.0
    assert err.count("error:") == 1 and "no-such-text-model" in err and "no_checkpoint_here" not in err


def test_rembg_first_run_is_announced(monkeypatch, tmp_path):
    from mira.inference import preprocess

    package = tmp_path / "pymatting"
    (package / "util" / "__pycache__").mkdir(parents=True)
    assert not preprocess.numba_cache_ready(package)
    (package / "util" / "__pycache__" / "boxfilter.f-6.py311.nbi").write_bytes(b"")
    assert preprocess.numba_cache_ready(package) and preprocess.numba_cache_ready(None)
    cache = tmp_path / "numba_cache" / "site-packages_pymatting_util"  # NUMBA_CACHE_DIR: one folder per source dir
    cache.mkdir(parents=True)
    assert not preprocess.numba_cache_ready(tmp_path / "site" / "pymatting", cache_dir=str(cache.parent))
    (cache / "boxfilter.f-6.py311.nbi").write_bytes(b"")
    assert preprocess.numba_cache_ready(tmp_path / "site" / "pymatting", cache_dir=str(cache.parent))
    said: list[str] = []
    monkeypatch.delitem(sys.modules, "rembg", raising=False)
    monkeypatch.setattr(preprocess, "numba_cache_ready", lambda *args: False)
    assert preprocess.announce_rembg_setup(said.append) and len(said) == 1
    assert "one-off" in said[0] and "minute" in said[0]
    monkeypatch.setattr(preprocess, "numba_cache_ready", lambda *args: True)
    assert not preprocess.announce_rembg_setup(said.append) and len(said) == 1


def test_smoke_training_config_checkpoints_every_100_steps_and_reports_no_random_lpips():
    config = load_config(REPO_ROOT / "configs" / "tiny.json")
    t = config.train
    assert t.save_every_epoch == 0 and t.checkpoint_every_steps >= 100 and t.val_every_steps >= 100
    assert t.lpips_weight == 0 and not t.lpips_pretrained_backbone  # so validation builds no LPIPS at all


def test_random_backbone_lpips_is_labelled():
    from torch import nn

    from mira.training.validation import lpips_metric_name

    random_lpips, real_lpips = nn.Identity(), nn.Identity()
    random_lpips.pnet_rand, real_lpips.pnet_rand = True, False
    assert lpips_metric_name(random_lpips) == "lpips_random_backbone"
    assert lpips_metric_name(real_lpips) == "lpips"
