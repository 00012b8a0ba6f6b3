#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the wheels benchmarks/gpu_all.sh installs offline on the GPU machine.
#
#     bash benchmarks/gpu_wheels.sh                     # cp312 manylinux wheels, for the GPU image
#     PYVER=3.11 WHEEL_DIR=/tmp/w bash benchmarks/gpu_wheels.sh   # cp311, as tests/test_gpu_readiness.py does
#
# The GPU image (Python 3.12, torch, transformers, peft, numpy, pandas, pyarrow, safetensors, tokenizers and
# their dependencies) runs both benchmarks as it is: lsbm_sim imports Mesa and pydantic only where the
# simulation and the scenario schema need them, and the benchmarks use neither, nor scipy, scikit-learn,
# PyYAML, typer or rich. pydantic, which the image lacks, is the one thing fetched, pinned, ~2.5 MB: it lets
# whatever still reaches the scenario schema there (BehaviorSpec, `lsbm_sim.studies.distill`) import too. Mesa is
# left out: the simulation loop is not run on the GPU machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEEL_DIR="${WHEEL_DIR:-$ROOT/.whl}"
PYVER="${PYVER:-3.12}"
PIP="${PIP:-python3 -m pip}"
WHEELS=(
    pydantic==2.13.5
    pydantic-core==2.46.5
    annotated-types==0.7.0
    typing-inspection==0.4.2
)
mkdir -p "$WHEEL_DIR"
# --no-deps: the list is the whole set; the image already has typing-extensions, which pydantic also needs.
$PIP download --quiet --only-binary=:all: --no-deps --implementation cp --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --dest "$WHEEL_DIR" "${WHEELS[@]}"
du -ch "$WHEEL_DIR"/*.whl | tail -n 1 | sed "s|total|in $WHEEL_DIR|"
