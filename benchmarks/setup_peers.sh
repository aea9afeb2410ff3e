#!/usr/bin/env bash
# Create .venv-bench: the project plus the peer tools the benchmarks compare against
# (pytorch-ood, scikit-learn, NannyML, river). Kept apart from .venv because pytorch-ood
# drags a ~6 GB CUDA torch. Usage: bash benchmarks/setup_peers.sh  (from anywhere)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python3 -m venv .venv-bench
.venv-bench/bin/pip install --upgrade pip
.venv-bench/bin/pip install -r benchmarks/requirements-peers.txt
# The project itself; its heavy runtime deps (Airflow, databases) are not needed by the benchmarks.
.venv-bench/bin/pip install -e . --no-deps
echo "done: $root/.venv-bench"
