"""Command line of ``train_ddp.py``: ``--config_path`` plus ``--<key> <value>`` for every config key.

Each value is parsed with the type of its key in :class:`mira.config.MiraConfig`
(``--batch_size 2``, ``--compile true``, ``--box_min "[-1,-1,-1]"`` or ``--box_min -1,-1,-1``,
``--encoder_config '{"hidden_size": 32}'`` / ``none``); an unknown key is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Sequence

from mira.config import ConfigError, MiraConfig, load_config

DEFAULT_CONFIG_PATH = "configs/config.json"
REPO_DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / DEFAULT_CONFIG_PATH
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def key_types() -> dict[str, Any]:
    """Flat config key -> its type hint, over every section of :class:`MiraConfig`."""
    config = MiraConfig()
    hints: dict[str, Any] = {}
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        hints.update(typing.get_type_hints(type(section)))
    return hints


def parse_value(text: str, hint: Any, key: str) -> Any:
    """Parse one command-line string as the type ``hint`` of config key ``key``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if o is not type(None)]
        if type(None) in typing.get_args(hint) and text.strip().lower() in ("none", "null"):
            return None
        errors = []
        for option in options:
            try:
                return parse_value(text, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"command line: --{key}: cannot parse {text!r} as {hint} ({'; '.join(errors)})")
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"command line: --{key} must be true or false, got {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"command line: --{key} must be an integer, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"command line: --{key} must be a number, got {text!r}") from None
    if hint is str:
        return text
    if origin is list:
        (item_type,) = typing.get_args(hint)
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                items = json.loads(stripped)
            except json.JSONDecodeError as error:
                raise ConfigError(f"command line: --{key}: invalid JSON list {text!r} ({error})") from None
            return [parse_value(json.dumps(v) if not isinstance(v, str) else v, item_type, key) for v in items]
        return [parse_value(part, item_type, key) for part in stripped.split(",") if part.strip()]
    if origin is dict or hint is dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"command line: --{key} must be a JSON object, got {text!r} ({error})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"command line: --{key} must be a JSON object, got {text!r}")
        return value
    raise ConfigError(f"command line: --{key} has unsupported type {hint}")


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with ``--config_path`` and one ``--<key>`` option per config key."""
    parser = argparse.ArgumentParser(
        prog="train_ddp.py",
        description="Train MIRA (one process, torchrun, or multi-node torchrun). Every config key "
        "can be overridden as --<key> <value>; see mira/config.py for their meaning.",
        allow_abbrev=False,
    )
    parser.add_argument("--config_path", default=DEFAULT_CONFIG_PATH, help="JSON config (flat or nested keys)")
    parser.add_argument("--init_from", default=None, metavar="CHECKPOINT",
                        help="fine-tune from these weights: a MIRA or OpenLRM checkpoint folder or a hub id (e.g. "
                             "zxhezexin/openlrm-mix-base-1.1); its architecture is used. Same as "
                             "--model_preloading_strategy CHECKPOINT")
    group = parser.add_argument_group("config overrides")
    defaults = MiraConfig().to_flat_dict()
    for key, hint in key_types().items():
        group.add_argument(f"--{key}", dest=key, default=None, metavar="VALUE",
                           help=f"{_type_name(hint)} (default: {defaults[key]!r})")
    return parser


def parse_overrides(namespace: argparse.Namespace) -> dict[str, Any]:
    """The config keys given on the command line, parsed with their types."""
    hints = key_types()
    return {key: parse_value(text, hints[key], key)
            for key, text in vars(namespace).items() if key in hints and text is not None}


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


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
