#!/usr/bin/env bash
# The one prepared GPU check, for a machine with CUDA and PyTorch but none of our other
# packages: the device tests on real CUDA, `eval` of vanilla vs the shortcut on the GPU, and the
# interleaved latency table, then the mnist14 base of gpu_default trained and measured. Results go to $OUT.
#
#   bash benchmarks/gpu_check.sh            # wheels for missing pure-Python packages in .whl/ (optional)
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD ABLATE_HOME=${ABLATE_HOME:-/tmp/ablate_home} ABLATE_PROGRESS=0 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -3
# The smoke sweep with GPU trials needs Ray and MLflow there (Ray's wheel alone is 79 MB).
if python3 -c "import ray, mlflow, optuna, pydantic" 2>/dev/null; then
  ABLATE_RUNS=/tmp/gpu_runs python3 -m ablate sweep smoke --device cuda --no-report 2>&1 | tail -15
else
  echo "skipped: smoke sweep (ray/mlflow/optuna/pydantic not importable on this machine)"
fi
for m in "vanilla" "shortcut --budget 4" "feature_cache --budget 4"; do
  tag=${m%% *}
  /usr/bin/time -f "$tag wall %e s" python3 -m ablate eval --device cuda --steps 16 --method $m \
    --n-samples 2000 --batch-size 500 --json "$OUT/eval_$tag.json" 2>&1 | grep -vE "^\s*$" | tail -22
done
# its last part, the sweep overhead, needs Ray: skipped where Ray is not importable
python3 benchmarks/scaling.py --device cuda $(python3 -c "import ray" 2>/dev/null || echo --no-sweep) 2>&1 \
  | tee "$OUT/scaling_cuda.md"
python3 benchmarks/latency_ratio.py --device cuda --steps 16 --budget 3 4 6 --method shortcut feature_cache \
  --rounds 10 --batch-size 500 | tee "$OUT/latency_cuda.md"
# The wider 14x14-token base of gpu_default, trained here, then vanilla vs the shortcut on it at N = 32, B = 8.
/usr/bin/time -f "prepare mnist14 wall %e s" python3 -m ablate prepare --dataset mnist14 --device cuda 2>&1 | tail -2
for m in "vanilla" "shortcut --budget 8"; do
  tag=${m%% *}
  /usr/bin/time -f "mnist14 $tag wall %e s" python3 -m ablate eval --device cuda --dataset mnist14 --steps 32 \
    --method $m --n-samples 2000 --batch-size 500 --json "$OUT/mnist14_$tag.json" 2>&1 | grep -vE "^\s*$" | tail -22
done
