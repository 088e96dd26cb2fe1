"""MIRA inference: images or text prompts -> coloured mesh and 360-degree video.

    python test.py --checkpoint_path C [--config_path J] --mode image|text --input X [X ...] \\
        --output_path O --export_video --export_mesh

All logic lives in :mod:`mira.inference`; ``python test.py --help`` lists every flag.
"""

import sys

from mira.inference.cli import main

if __name__ == "__main__":
    sys.exit(main())
