"""Train MIRA: ``python train_ddp.py``, ``torchrun --nproc_per_node=N train_ddp.py`` or multi-node:

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_id=100 --rdzv_backend=c10d \\
        --rdzv_endpoint=$MASTER_ADDR:29400 train_ddp.py --config_path configs/config.json

Every config key can be overridden as ``--<key> <value>``; ``python train_ddp.py --help`` lists them.
"""

import sys

from mira.training.launch import main

if __name__ == "__main__":
    sys.exit(main())
