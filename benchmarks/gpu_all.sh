#!/usr/bin/env bash
# Both GPU benchmarks in one command, for a bare GPU machine with no network (see benchmarks/RESULTS.md).
#
#     bash benchmarks/gpu_all.sh            # on the GPU machine, from the repository root
#     bash benchmarks/gpu_all.sh --tiny     # the CPU smoke test of the same steps (tests/test_gpu_readiness.py)
#
# 1. Wheels in .whl/ (filled beforehand by benchmarks/gpu_wheels.sh) whose distribution the machine lacks are
#    installed offline into a temporary folder put first on PYTHONPATH; a distribution already installed is
#    never shadowed (the image's torch stack stays as it is). Nothing is installed for good.
# 2. The versions it runs with are printed and written to versions.txt: python, torch, transformers, peft, the
#    CUDA device.
# 3. benchmarks/gpu_llm.py and benchmarks/gpu_bft.py run one after the other, each under `timeout`
#    (LLM_SECONDS + BFT_SECONDS = 510 s by default, inside 9 minutes), each writing its JSON and log.
# Results go to $OUT, or ./gpu-results when OUT is not set. The exit code is 0 only when both benchmarks
# finished; a benchmark that fails or runs out of time leaves its log, and the other still runs.
#
# Environment: PYTHON (default python3), WHEEL_DIR (default ROOT/.whl), LLM_SECONDS (210), BFT_SECONDS (300),
# LLM_ARGS, BFT_ARGS (extra arguments for each script).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="${OUT:-$ROOT/gpu-results}"
PYTHON="${PYTHON:-python3}"
WHEEL_DIR="${WHEEL_DIR:-$ROOT/.whl}"
LLM_SECONDS="${LLM_SECONDS:-210}"
BFT_SECONDS="${BFT_SECONDS:-300}"
TINY=()
if [ "${1:-}" = "--tiny" ]; then TINY=(--tiny); fi
mkdir -p "$RESULTS"
cd "$ROOT" || exit 2

SITE="$(mktemp -d "${TMPDIR:-/tmp}/lsbm-gpu-site.XXXXXX")"
trap 'rm -rf "$SITE"' EXIT

# ---- 1. offline install of the wheels the machine lacks
shopt -s nullglob
wheels=("$WHEEL_DIR"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    # A wheel's file name starts with its distribution name; install it only if that distribution is absent.
    mapfile -t missing < <("$PYTHON" - "${wheels[@]}" <<'EOF'
import importlib.metadata as metadata
import re
import sys

for wheel in sys.argv[1:]:
    name = re.sub(r"[-_.]+", "-", wheel.rsplit("/", 1)[-1].split("-")[0]).lower()
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        print(wheel)
EOF
)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${#missing[@]} wheel(s) from $WHEEL_DIR into $SITE (offline):"
        printf '    %s\n' "${missing[@]##*/}"
        if ! "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" "${missing[@]}" \
                > "$RESULTS/install.log" 2>&1; then
            echo "warning: the offline install failed (see $RESULTS/install.log); running without those wheels"
        fi
    else
        echo "every wheel in $WHEEL_DIR is installed already; nothing to install"
    fi
fi
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# ---- 2. versions
"$PYTHON" - "$SITE" <<'EOF' | tee "$RESULTS/versions.txt"
import importlib.metadata
import platform
import sys

import torch
import transformers

try:
    import peft

    peft_version = peft.__version__
except ImportError:
    peft_version = "absent (gpu_bft.py falls back to full fine-tuning)"
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, peft {peft_version}")
print(f"CUDA device: {device}")
installed = sorted(f"{d.metadata['Name']} {d.version}" for d in importlib.metadata.distributions(path=[sys.argv[1]]))
print(f"installed from the wheels: {', '.join(installed) or 'nothing'}")
EOF

# ---- 3. the benchmarks, each under its time limit
run() {  # NAME SECONDS SCRIPT ARGS...
    local name="$1" seconds="$2" script="$3"
    shift 3
    echo "== $name (at most $seconds s)"
    local started=$SECONDS
    timeout --kill-after=15 "$seconds" "$PYTHON" "$script" "$@" --json "$RESULTS/$name.json" \
        > "$RESULTS/$name.log" 2>&1
    local code=$?
    tail -n 8 "$RESULTS/$name.log"
    if [ $code -eq 124 ] || [ $code -eq 137 ]; then
        echo "== $name ran out of its $seconds s (exit $code); its log: $RESULTS/$name.log"
    else
        echo "== $name exit $code after $((SECONDS - started)) s"
    fi
    return $code
}
# shellcheck disable=SC2086  # LLM_ARGS / BFT_ARGS are word lists on purpose
run gpu_llm "$LLM_SECONDS" benchmarks/gpu_llm.py "${TINY[@]}" ${LLM_ARGS:-}
llm=$?
run gpu_bft "$BFT_SECONDS" benchmarks/gpu_bft.py "${TINY[@]}" ${BFT_ARGS:-}
bft=$?
echo "results in $RESULTS: gpu_llm exit $llm, gpu_bft exit $bft"
[ $llm -eq 0 ] && [ $bft -eq 0 ]
