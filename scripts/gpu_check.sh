#!/usr/bin/env bash
# GPU check: sfteval's vllm backend vs plain vllm.LLM.generate on the same prompts (target: >= 0.95 of plain).
#
#   bash scripts/gpu_check.sh                 # builds a random-weight ~110M Llama (seconds), 2000 prompts x 128 tokens
#   bash scripts/gpu_check.sh /path/to/ckpt   # your checkpoint instead; extra flags go to scripts/gpu_check.py
#   N=500 MAX_TOKENS=64 bash scripts/gpu_check.sh            # smaller, for a tight time budget
#   DRY_RUN=1 PYTHON=~/.cache/sfteval/vllm-venv/bin/python bash scripts/gpu_check.sh   # CPU, tiny model: script check
#   RAY=1 bash scripts/gpu_check.sh           # sfteval --ray (Ray Data LLM) vs plain vLLM, 10000 prompts, target 0.9
#
# Environment: PYTHON (an interpreter with vllm, torch, transformers and sfteval's dependencies; default python3),
# N, MAX_TOKENS, ROUNDS (per path, alternating; default 2), TARGET (0.95), JSON (write the numbers to this file),
# RAY=1 (the --ray case: needs ray[data] too; start-up included on both sides, so N defaults to 10000, TARGET to 0.9),
# REPLICAS (--ray: engine replicas, default 1).
# Exit status: 0 PASS, 1 below target or outputs differ, 2 setup problem (no vllm, no GPU, missing package).
# Expected wall time on one H100: ~1 min import + engine start (CUDA graphs captured), ~1 min of timed rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
say() { echo "[gpu_check] $*"; }

command -v "$PY" >/dev/null 2>&1 || { say "no interpreter '$PY' (set PYTHON=...)"; exit 2; }
# Fail fast, before the slow imports: every package the check needs must be findable.
missing="$("$PY" - <<'EOF'
import importlib.util
import os
need = ["vllm", "torch", "transformers", "tokenizers", "pydantic", "click", "yaml", "tqdm", "jinja2"]
if os.environ.get("RAY") == "1":
    need.append("ray")
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)"
if [[ -n "$missing" ]]; then
  say "missing in $PY: $missing"
  say "install vllm with: pip install 'sfteval[vllm]' (or pip install vllm; RAY=1 also needs pip install 'sfteval[ray]'), or point PYTHON at a venv that has them"
  exit 2
fi

RAY_ARGS=()
[[ "${RAY:-0}" == 1 ]] && RAY_ARGS=(--ray --replicas "${REPLICAS:-1}")
ARGS=(-n "${N:-$([[ "${RAY:-0}" == 1 ]] && echo 10000 || echo 2000)}" --max-tokens "${MAX_TOKENS:-128}"
      --rounds "${ROUNDS:-2}" --target "${TARGET:-$([[ "${RAY:-0}" == 1 ]] && echo 0.9 || echo 0.95)}" ${RAY_ARGS[@]+"${RAY_ARGS[@]}"})
[[ -n "${JSON:-}" ]] && ARGS+=(--json "$JSON")
export HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  # CPU build of vLLM (docs/vllm-cpu.md): small KV cache, in-process engine, no core pinning, a few prompts.
  export VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_OMP_THREADS_BIND=nobind
  export VLLM_HOST_IP=127.0.0.1
  ARGS=(-n "${N:-24}" --max-tokens "${MAX_TOKENS:-8}" --rounds "${ROUNDS:-1}"
        --target "${TARGET:-$([[ "${RAY:-0}" == 1 ]] && echo 0.9 || echo 0.95)}"
        --max-model-len 256 --cpu-dry-run ${JSON:+--json "$JSON"} ${RAY_ARGS[@]+"${RAY_ARGS[@]}"})
else
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader | sed 's/^/[gpu_check] gpu: /'
  else
    say "nvidia-smi not found; continuing (torch decides whether a GPU is visible)"
  fi
fi
say "$("$PY" --version 2>&1), args: ${ARGS[*]} $*"
PYTHONPATH="$PWD/scripts/pythonpath${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" scripts/gpu_check.py "${ARGS[@]}" "$@"
