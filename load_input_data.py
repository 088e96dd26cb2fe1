"""Make a multi-view training dataset: gather objects (procedural, local files or Objaverse),
render them with Blender, and write ``<output_dir>/index.json``. See ``mira/data/cli.py``.

    python load_input_data.py --synthetic 100 --output_dir data/renders --num_renders 32 \\
        --resolution 256 --engine CYCLES --workers 2 --update_config configs/config.json
"""

from mira.data.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
