"""The command-line vocabulary shared by MIRA's tools, and the helpers that keep it one.

``test.py``, ``train_ddp.py``, ``load_input_data.py`` and ``python -m mira.fit / mira.evaluate /
mira.convert / mira.app`` use the same name for the same thing:

==================== =====================================================================
``--checkpoint_path`` the model to load: save_pretrained folder, training run or .pt, hub id
``--config_path``     a config JSON (``configs/*.json``)
``--input``           what ``test.py`` reconstructs: images, folders of images, prompts
``--data_dir``        a dataset: index.json root, a folder of object folders, or one object
``--output_path``     the folder results are written to
``--set KEY=VALUE``   override one config key (``train_ddp.py`` also takes ``--KEY VALUE``)
``--device``          auto (CUDA if available), cpu, cuda, cuda:N
``--seed``            random seed
``--no_progress``     no progress bars
``--export_mesh``     also write meshes
``--num_frames``, ``--render_size``, ``--elevation``: video / rendered views
``--mesh_resolution``, ``--density_threshold``: marching cubes
==================== =====================================================================

Older spellings (``--checkpoint``, ``--data``, ``--out``, ``--config``, ``--output_dir``,
``--quiet`` ...) stay as hidden aliases (:func:`add_hidden_alias`): they parse, ``--help`` does not
list them. Every parser uses :class:`HelpFormatter`, which ends each option's help with its default.
This module imports only the standard library and :mod:`mira.config` (``--help`` must print fast).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any, Sequence

from mira.config import ConfigError, MiraConfig

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description and epilog as written and ends every option's help with its default.

    Options whose help already speaks of their default (``"(default: the checkpoint's ...)"``), flags
    (``store_true``), required options and options without a default are left as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings or action.required or action.nargs == 0:
            return text
        if action.default is None or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def new_parser(prog: str, description: str, epilog: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with MIRA's help style (:class:`HelpFormatter`, examples in the epilog)."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter,
                                   **kwargs)


def add_hidden_alias(container: argparse._ActionsContainer, *names: str, dest: str, **kwargs: Any) -> argparse.Action:
    """An old spelling of option ``dest``: it parses into the same field and is not listed by ``--help``.

    ``kwargs`` (``type``, ``action``, ``nargs`` ...) must match the option's own. Add it after the option
    itself; its default is :data:`argparse.SUPPRESS`, so the option's default stands.
    """
    return container.add_argument(*names, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def require(parser: argparse.ArgumentParser, args: argparse.Namespace, *options: str) -> None:
    """``parser.error`` unless every option in ``options`` (``"--data_dir"`` ...) was given under some spelling.

    argparse's own ``required=True`` would reject an option given by its hidden alias, hence this check.
    """
    missing = [option for option in options if getattr(args, option.lstrip("-"), None) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def example_commands(epilog: str) -> list[str]:
    """The example command lines of an epilog (``python ...`` / ``torchrun ...`` lines, continuations joined).

    A ``#`` after two spaces starts a comment, as in a shell.
    """
    commands: list[str] = []
    pending = ""
    for raw in epilog.splitlines():
        line = raw.strip()
        if pending:
            line = pending + " " + line
        elif not line.startswith(("python ", "torchrun ")):
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        pending = ""
        commands.append(line.split("  #", 1)[0].strip())
    return commands


# ---------------------------------------------------------------------------- config keys on the command line
def key_types() -> dict[str, Any]:
    """Flat config key -> its type hint, over every section of :class:`MiraConfig`."""
    config = MiraConfig()
    hints: dict[str, Any] = {}
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        hints.update(typing.get_type_hints(type(section)))
    return hints


def type_name(hint: Any) -> str:
    """``int``, ``list[float]``, ``dict | None`` ...: a type hint as a reader writes it."""
    return getattr(hint, "__name__", None) if not typing.get_args(hint) else str(hint).replace("typing.", "")


def parse_value(text: str, hint: Any, key: str) -> Any:
    """Parse one command-line string as the type ``hint`` of config key ``key``.

    ``2`` (int), ``2e-4`` (float), ``true``/``no`` (bool), ``[1, 2]`` or ``1,2`` (list), ``{...}`` (dict),
    ``none`` (an optional key); a wrong value raises :class:`ConfigError` naming the key.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _parse_union(text, hint, key)
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"command line: --{key} must be true or false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            kind = "an integer" if hint is int else "a number"
            raise ConfigError(f"command line: --{key} must be {kind}, got {text!r}") from None
    if hint is str:
        return text
    if origin is list:
        return _parse_list(text, typing.get_args(hint)[0], key)
    if origin is dict or hint is dict:
        return _parse_dict(text, key)
    raise ConfigError(f"command line: --{key} has unsupported type {hint}")


def _parse_union(text: str, hint: Any, key: str) -> Any:
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


def _parse_list(text: str, item_type: Any, key: str) -> list[Any]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise ConfigError(f"command line: --{key}: invalid JSON list {text!r} ({error})") from None
        return [parse_value(json.dumps(v) if not isinstance(v, str) else v, item_type, key) for v in items]
    return [parse_value(part, item_type, key) for part in stripped.split(",") if part.strip()]


def _parse_dict(text: str, key: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"command line: --{key} must be a JSON object, got {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"command line: --{key} must be a JSON object, got {text!r}")
    return value


def parse_set_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` arguments -> ``{key: value}``, each value parsed with its key's type.

    Raises:
        ConfigError: a pair without ``=``, an unknown key (the message lists the valid ones) or a bad value.
    """
    hints = key_types()
    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got '{pair}'")
        key, text = (part.strip() for part in pair.split("=", 1))
        if key not in hints:
            raise ConfigError(f"--set: unknown key '{key}'; valid keys: {sorted(hints)}")
        overrides[key] = parse_value(text, hints[key], key)
    return overrides


def add_set_option(container: argparse._ActionsContainer) -> None:
    """The ``--set KEY=VALUE`` option (repeatable) of every tool that reads a config."""
    container.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="override one config key, e.g. --set rendering_samples_per_ray=64 (repeatable; "
                                "keys and meanings: train_ddp.py --help; default: none)")
