"""Command line of ``train_ddp.py``: ``--config_path`` plus ``--<key> <value>`` (or ``--set KEY=VALUE``)
for every config key.

Each value is parsed with the type of its key in :class:`mira.config.MiraConfig`
(``--batch_size 2``, ``--compile true``, ``--box_min "[-1,-1,-1]"`` or ``--box_min -1,-1,-1``,
``--encoder_config '{"hidden_size": 32}'`` / ``none``); an unknown key is an error. ``--help`` gives
each key's meaning (:mod:`mira.config_help`), type and default, and imports nothing heavy.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Sequence

from mira.cli_options import key_types, new_parser, parse_set_pairs, parse_value, type_name
from mira.config import ConfigError, MiraConfig, load_config
from mira.config_help import key_help

__all__ = ["DEFAULT_CONFIG_PATH", "build_parser", "key_types", "parse_args", "parse_overrides", "parse_value"]

DEFAULT_CONFIG_PATH = "configs/config.json"
REPO_DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / DEFAULT_CONFIG_PATH

EPILOG = """examples:
  python train_ddp.py --config_path configs/tiny.json --synthetic_objects 8 --num_epochs 5 --max_steps 10 --model_save_path checkpoints/tiny-spheres  # no dataset needed, about a minute
  python train_ddp.py --config_path configs/tiny.json --num_epochs 200 --max_steps 300  # the README smoke run (data/tiny: see load_input_data.py --help), about 3 min
  python train_ddp.py --config_path configs/mira-base.json --set data_dir=data/renders --set batch_size=4
  torchrun --standalone --nproc_per_node=4 train_ddp.py --config_path configs/mira-demo.json --time_limit_minutes 9  # GPUs, procedural data
  python train_ddp.py --config_path configs/config.json --init_from zxhezexin/openlrm-mix-base-1.1 --data_dir data/renders  # fine-tune OpenLRM
  python train_ddp.py --config_path configs/config.json --init_from stabilityai/TripoSR --data_dir data/renders  # fine-tune TripoSR

Defaults above are MiraConfig's (mira/config.py); the --config_path file overrides them and the
command line overrides the file. Multi-node: torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d
--rdzv_endpoint=HOST:29400 train_ddp.py ...
"""


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with ``--config_path``, ``--init_from``, ``--set`` and one ``--<key>`` per config key."""
    parser = new_parser("train_ddp.py", "Train MIRA (one process, torchrun, or multi-node torchrun). Every config key\n"
                        "below can be set as --<key> VALUE or --set KEY=VALUE.", EPILOG, allow_abbrev=False,
                        usage="%(prog)s [--config_path JSON] [--init_from CHECKPOINT] [--set KEY=VALUE ...] "
                              "[--<key> VALUE ...]")
    parser.add_argument("--config_path", default=DEFAULT_CONFIG_PATH, help="JSON config (flat or nested keys)")
    parser.add_argument("--init_from", default=None, metavar="CHECKPOINT",
                        help="fine-tune from these weights: a MIRA, OpenLRM or TripoSR checkpoint folder or a hub id (e.g. "
                             "zxhezexin/openlrm-mix-base-1.1, stabilityai/TripoSR); its architecture is used. Same as "
                             "--model_preloading_strategy CHECKPOINT (default: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, the same as --KEY VALUE (repeatable; default: none)")
    hints = key_types()
    config = MiraConfig()
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        group = parser.add_argument_group(f"config keys: {section_field.name} ({type(section).__doc__.strip().rstrip('.')})")
        for key_field in dataclasses.fields(section):
            key = key_field.name
            default = getattr(section, key)
            group.add_argument(f"--{key}", dest=key, default=None, metavar=_metavar(hints[key]),
                               help=f"{key_help(key)} (default: {_show(default)})".replace("%", "%%"))
    return parser


def _metavar(hint: Any) -> str:
    """INT, FLOAT, BOOL, STR, LIST (``1,2,3`` or ``[1, 2, 3]``) or JSON (an object, or none)."""
    name = type_name(hint)
    for word, metavar in (("list", "LIST"), ("dict", "JSON"), ("bool", "BOOL"), ("int", "INT"), ("float", "FLOAT")):
        if name.startswith(word):
            return metavar
    return "STR"


def _show(value: Any) -> str:
    """A default as it is written on the command line (``true``, ``none``, ``[1.0, 1.0]``, ``'text'``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def parse_overrides(namespace: argparse.Namespace) -> dict[str, Any]:
    """The config keys given on the command line (``--KEY VALUE`` and ``--set KEY=VALUE``), parsed with their types.

    Raises:
        ConfigError: a value of the wrong type, an unknown ``--set`` key, or one key given twice with two values.
    """
    hints = key_types()
    overrides = {key: parse_value(text, hints[key], key)
                 for key, text in vars(namespace).items() if key in hints and text is not None}
    for key, value in parse_set_pairs(getattr(namespace, "set", None) or []).items():
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"command line: --{key} and --set {key}=... disagree; give one")
        overrides[key] = value
    return overrides


def parse_args(argv: Sequence[str] | None = None) -> tuple[MiraConfig, argparse.Namespace]:
    """Parse ``argv`` into the loaded, overridden and validated config (and the raw namespace).

    Raises:
        SystemExit: unknown option (argparse prints the usage and the offending option).
        ConfigError: a value of the wrong type or an invalid config file.
    """
    parser = build_parser()
    namespace = parser.parse_args(argv)
    overrides = parse_overrides(namespace)
    if namespace.init_from is not None:
        if "model_preloading_strategy" in overrides and overrides["model_preloading_strategy"] != namespace.init_from:
            raise ConfigError("command line: --init_from and --model_preloading_strategy disagree; give one")
        overrides["model_preloading_strategy"] = namespace.init_from
    config_path = Path(namespace.config_path)
    if namespace.config_path == DEFAULT_CONFIG_PATH and not config_path.is_file() and REPO_DEFAULT_CONFIG.is_file():
        config_path = REPO_DEFAULT_CONFIG  # run from outside the repository
    return load_config(config_path, **overrides), namespace
