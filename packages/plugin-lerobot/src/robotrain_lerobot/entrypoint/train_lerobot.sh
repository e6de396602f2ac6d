#!/usr/bin/env bash
# robotrain's lerobot workload entry point: bash training/train_lerobot.sh <lerobot-train arguments>
# Installs the pinned LeRobot, fetches the dataset, trains and registers the newest checkpoint
# (see lerobot_job.py). PYTHON picks the interpreter (default: python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" "$here/lerobot_job.py" "$@"
