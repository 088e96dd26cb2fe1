"""``python -m mira.convert --checkpoint_path SRC --output_path OUT`` (or ``python -m mira.convert SRC OUT``):
any checkpoint MIRA reads -> a MIRA ``save_pretrained`` folder.

SRC is an OpenLRM v1.1 checkpoint folder or hub id (``zxhezexin/openlrm-mix-base-1.1``), a TripoSR
folder (``config.yaml`` + ``model.ckpt``) or hub id (``stabilityai/TripoSR``), or any other kind
:mod:`mira.checkpoints` reads (a training ``.pt``, a run folder ...). The conversion is strict
(:mod:`mira.pretrained.openlrm`, :mod:`mira.pretrained.triposr`): every upstream tensor is used and none is invented; a
tensor left over or missing, or a config that does not match the weights, is one error naming it,
exit status 1, and nothing is written. OUT gets ``model.safetensors`` + ``config.json`` (atomically),
which ``test.py``, ``train_ddp.py --init_from`` and ``mira.evaluate`` load directly.

    python -m mira.convert --checkpoint_path zxhezexin/openlrm-mix-base-1.1 --output_path checkpoints/openlrm-mix-base
    python -m mira.convert path/to/openlrm-tiny out --source_size 56 --encoder_num_heads 2   # unpublished sizes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mira.cli_options import new_parser
from mira.config import ConfigError
from mira.errors import InferenceError

EPILOG = """examples:
  python -m mira.convert --checkpoint_path mira/weights/mira-demo --output_path outputs/mira-demo-copy  # any kind MIRA reads
  python -m mira.convert --checkpoint_path checkpoints/tiny-spheres --output_path outputs/tiny-final  # a training run (train_ddp.py --help) -> one folder
  python -m mira.convert --checkpoint_path zxhezexin/openlrm-mix-base-1.1 --output_path checkpoints/openlrm-mix-base
  python -m mira.convert zxhezexin/openlrm-obj-small-1.1 checkpoints/openlrm-obj-small  # positional SRC OUT work too
  python -m mira.convert --checkpoint_path stabilityai/TripoSR --output_path checkpoints/triposr  # config.yaml + model.ckpt
"""


def convert(source: str, target: str | Path, source_size: int | None = None,
            encoder_num_heads: int | None = None) -> Path:
    """Load ``source`` (strictly converted when it is OpenLRM's) and ``save_pretrained`` it to ``target``.

    Raises:
        InferenceError (and subclasses): unreadable, unknown or mismatched checkpoint; nothing is written.
        FileExistsError: ``target`` exists and is not an empty directory.
    """
    from mira.checkpoints import load_model

    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not empty; choose a new output folder")
    options = {key: value for key, value in (("source_size", source_size), ("encoder_num_heads", encoder_num_heads))
               if value is not None}
    model = load_model(source, openlrm_options=options)
    return model.save_pretrained(target)


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m mira.convert``: SRC and OUT as ``--checkpoint_path`` / ``--output_path`` or positionally."""
    parser = new_parser("python -m mira.convert", "Convert any checkpoint MIRA reads (an OpenLRM or TripoSR folder or hub "
                        "id, a training run or .pt ...)\ninto a MIRA save_pretrained folder, strictly: a tensor left over or "
                        "missing is an error.", EPILOG)
    parser.add_argument("source", nargs="?", default=None, metavar="SRC", help="same as --checkpoint_path")
    parser.add_argument("output", nargs="?", default=None, metavar="OUT", help="same as --output_path")
    parser.add_argument("--checkpoint_path", default=None,
                        help="OpenLRM or TripoSR checkpoint folder or hub id, or any checkpoint mira.checkpoints reads "
                             "(required, or SRC)")
    parser.add_argument("--output_path", default=None,
                        help="new folder for the MIRA checkpoint, model.safetensors + config.json (required, or OUT)")
    parser.add_argument("--source_size", type=int, default=None,
                        help="input side for an OpenLRM model of no published size (published: 224 / 336 / 448; "
                             "default: the published size's)")
    parser.add_argument("--encoder_num_heads", type=int, default=None,
                        help="DINOv2 heads for an encoder that is no published backbone (tests; default: the backbone's)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[str, Path, argparse.Namespace]:
    """``(source, output folder, namespace)``; SRC / OUT may be given positionally or by name, not both."""
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = []
    for positional, named, name in ((args.source, args.checkpoint_path, "--checkpoint_path"),
                                    (args.output, args.output_path, "--output_path")):
        if positional is not None and named is not None and positional != named:
            parser.error(f"give {name} or its positional form, not both")
        if positional is None and named is None:
            parser.error(f"the following arguments are required: {name} (or SRC OUT)")
        chosen.append(named if named is not None else positional)
    return chosen[0], Path(chosen[1]), args


def main(argv: Sequence[str] | None = None) -> int:
    """Convert; returns the exit code (1 with one ``error:`` line when nothing could be written)."""
    source, output, args = parse_args(argv)
    try:
        written = convert(source, output, args.source_size, args.encoder_num_heads)
    except (InferenceError, ConfigError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
