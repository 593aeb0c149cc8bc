#!/usr/bin/env bash
# The one prepared GPU check, for a machine with CUDA and PyTorch but none of our other packages.
# A session is lent a GPU for about 15 minutes in all, so the steps run in order of what they answer, each
# capped (seconds in the second column of `step`), and every result is written to $OUT as soon as it exists:
#   1. the device tests on real CUDA;                                     (results/gpu_h200/: passed but one)
#   2. `eval` of vanilla, the shortcut and feature caching at B = 4 on CUDA (FID, fidelity, latency);
#   3. the scaling table on CUDA at a batch that fills the GPU: does any base here get a wall speedup?
#      (on the small MNIST base the first GPU run found none: a step costs its launches, not its FLOPs);
#   4. the interleaved latency table (wall ratios measured in one run);
#   5. the smoke sweep with GPU trials, where Ray and MLflow are importable;
#   6. the mnist14 base of gpu_default trained (more than 6 minutes on an H200), vanilla vs shortcut on it.
#
#   bash benchmarks/gpu_check.sh            # wheels for missing pure-Python packages in .whl/ (optional)
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD ABLATE_HOME=${ABLATE_HOME:-/tmp/ablate_home} ABLATE_PROGRESS=0 PYTHONUNBUFFERED=1
start=$SECONDS
step() {  # step NAME SECONDS COMMAND...: run one capped step, say how long it took and how it ended
  local name=$1 cap=$2; shift 2
  echo "== $name (cap ${cap} s, at $((SECONDS - start)) s)"
  timeout "$cap" "$@"; local rc=$?
  echo "== $name: rc $rc$([ $rc = 124 ] && echo ' (cut at its cap)')"
}
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
step "device tests" 90 python3 -m pytest -q -p no:cacheprovider tests/test_device.py
for m in "vanilla" "shortcut --budget 4" "feature_cache --budget 4"; do
  tag=${m%% *}
  step "eval $tag" 90 python3 -m ablate eval --device cuda --steps 16 --method $m \
    --n-samples 2000 --batch-size 500 --json "$OUT/eval_$tag.json"
done
step "scaling" 150 bash -c "python3 benchmarks/scaling.py --device cuda --batch-size 256 --rounds 5 --no-sweep \
  --configs 7x7 14x14 14x14-wide --out $OUT/scaling_cuda.json | tee $OUT/scaling_cuda.md"
step "latency" 90 python3 benchmarks/latency_ratio.py --device cuda --steps 16 --budget 3 4 6 \
  --method shortcut feature_cache --rounds 6 --batch-size 500 --out $OUT/latency_cuda.md
if python3 -c "import ray, mlflow, optuna, pydantic" 2>/dev/null; then
  ABLATE_RUNS=/tmp/gpu_runs step "smoke sweep" 120 python3 -m ablate sweep smoke --device cuda --no-report
else
  echo "skipped: smoke sweep (ray/mlflow/optuna/pydantic not importable on this machine)"
fi
# The wider 14x14-token base of gpu_default, trained here, then vanilla vs the shortcut on it at N = 32, B = 8.
step "prepare mnist14" 600 python3 -m ablate prepare --dataset mnist14 --device cuda
for m in "vanilla" "shortcut --budget 8"; do
  tag=${m%% *}
  step "mnist14 eval $tag" 300 python3 -m ablate eval --device cuda --dataset mnist14 --steps 32 \
    --method $m --n-samples 2000 --batch-size 500 --json "$OUT/mnist14_$tag.json"
done
# What made each file here: manifest.json beside them (command, commit where git answers, date, versions).
python3 - "$OUT" <<'PY'
import sys
from pathlib import Path
from ablate.study.manifest import write_tool_manifest
for f in sorted(Path(sys.argv[1]).iterdir()):
    if f.is_file() and f.name != "manifest.json":
        write_tool_manifest(f, "bash benchmarks/gpu_check.sh (step writing " + f.name + ")")
PY
