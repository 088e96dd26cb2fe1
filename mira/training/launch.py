"""Entry point of ``train_ddp.py``: parse the command line, join the job, train, clean up.

Works the same under ``python train_ddp.py``, ``torchrun --nproc_per_node=N train_ddp.py``
and multi-node ``torchrun --nnodes=M --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT ...``.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from mira.config import ConfigError
from mira.training.cli import parse_args

LOGGER = logging.getLogger("mira.training")


def configure_logging(rank: int) -> None:
    """INFO on rank 0, WARNING elsewhere, each line tagged with the rank."""
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a training job; return the process exit code (0 also after a signal-triggered checkpoint)."""
    try:
        config, _ = parse_args(argv)
    except ConfigError as error:
        print(f"train_ddp.py: error: {error}", file=sys.stderr)
        return 2
    # PyTorch and the model only now: --help and bad options answer at once.
    from mira.models.encoder import EncoderWeightsNotFoundError
    from mira.training.distributed import cleanup_distributed, setup_distributed
    from mira.training.trainer import NonFiniteLossError, Trainer

    context = setup_distributed(config.train.device)
    configure_logging(context.rank)
    try:
        result = Trainer(config, context=context).fit()
    except (ConfigError, FileNotFoundError, EncoderWeightsNotFoundError) as error:
        # bad settings, no dataset index, missing DINOv2 / LPIPS / checkpoint weights: the message says the fix
        LOGGER.error("%s", error)
        return 2
    except NonFiniteLossError as error:
        LOGGER.error("%s", error)
        return 3
    finally:
        cleanup_distributed(context)
    if context.is_main:
        state = "stopped early" if result.stopped_early else "finished"
        LOGGER.info("%s at step %d; last checkpoint: %s", state, result.step, result.last_checkpoint)
    return 0
