#!/usr/bin/env bash
# Entry point with the Isaac Lab contract:
#   train.sh --mode train|smoke-test --task T --num_envs N --max_iterations M \
#            --checkpoint-uri U --checkpoint-mode MODE --register-checkpoint NAME [--headless]
# PYTHON may hold a command with arguments (e.g. "isaaclab.sh -p"), so it is not quoted.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2086
exec ${PYTHON:-python} "$here/../train.py" "$@"
