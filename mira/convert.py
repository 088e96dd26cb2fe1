"""``python -m mira.convert SRC OUT``: any checkpoint MIRA reads -> a MIRA ``save_pretrained`` folder.

SRC is an OpenLRM v1.1 checkpoint folder or hub id (``zxhezexin/openlrm-mix-base-1.1``), or any
other kind :mod:`mira.checkpoints` reads (a training ``.pt``, a run folder ...). The conversion is
strict (:mod:`mira.pretrained.openlrm`): every upstream tensor is used and none is invented; a
tensor left over or missing, or a config that does not match the weights, is one error naming it,
exit status 1, and nothing is written. OUT gets ``model.safetensors`` + ``config.json`` (atomically),
which ``test.py``, ``train_ddp.py --init_from`` and ``mira.evaluate`` load directly.

    python -m mira.convert zxhezexin/openlrm-mix-base-1.1 checkpoints/openlrm-mix-base
    python -m mira.convert path/to/openlrm-tiny out --source_size 56 --encoder_num_heads 2   # unpublished sizes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mira.config import ConfigError
from mira.errors import InferenceError


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mira.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="OpenLRM checkpoint folder or hub id, or any checkpoint mira.checkpoints reads")
    parser.add_argument("output", type=Path, help="new folder for the MIRA checkpoint (model.safetensors + config.json)")
    parser.add_argument("--source_size", type=int, default=None,
                        help="input side for an OpenLRM model of no published size (published: 224 / 336 / 448)")
    parser.add_argument("--encoder_num_heads", type=int, default=None,
                        help="DINOv2 heads for an encoder that is no published backbone (tests)")
    args = parser.parse_args(argv)
    try:
        written = convert(args.source, args.output, args.source_size, args.encoder_num_heads)
    except (InferenceError, ConfigError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
