#!/usr/bin/env bash
# LeRobot 0.4.4 beside this project's torch (2.13, CPU): its package pins torch < 2.11, so
# it goes in without its dependencies, and the dataset code's own needs come after. Used
# only by the LeRobot interchange tests (tests/data_collection/test_lerobot_interchange.py),
# which skip, saying why, without it. torchvision, which LeRobot's dataset module imports,
# has no CPU build for torch 2.13 on PyPI; those tests stand in an empty module for it.
set -euo pipefail
PY=${PY:-.venv/bin/python}
"$PY" -m pip install -q -c constraints.txt "pandas>=2,<3" "datasets>=4,<5" "huggingface-hub>=0.34.2,<0.36" \
    "accelerate>=1.10,<2" jsonlines "draccus==0.10.0" deepdiff termcolor einops pyarrow av
"$PY" -m pip install -q --no-deps "lerobot==0.4.4"
