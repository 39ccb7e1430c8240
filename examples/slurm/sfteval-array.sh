#!/bin/bash
# One shard of an evaluation per Slurm array task; `sfteval merge` joins them into one run afterwards.
#
#   sbatch examples/slurm/sfteval-array.sh                         # 8 tasks (--array below), 1 GPU each
#   CKPT=/shared/ckpt/step-1400 RUN=step-1400 sbatch examples/slurm/sfteval-array.sh
#   sbatch --array=3 examples/slurm/sfteval-array.sh               # re-run one failed shard: it resumes
#   sbatch --dependency=afterok:<JOBID> examples/slurm/sfteval-merge.sh   # then merge (or run it by hand)
#
# Needs on every node: sfteval installed (pip install 'sfteval[vllm]' in the environment activated below), the
# checkpoint and RESULTS on a shared filesystem. --shard auto reads SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT
# (an array that starts at 1, --array=1-8, works too; a step or a list of ids does not).
#SBATCH --job-name=sfteval
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=04:00:00
#SBATCH --output=logs/sfteval-%A_%a.out
set -euo pipefail

CKPT="${CKPT:-/shared/ckpt/step-1200}"
RUN="${RUN:-step-1200}"
SUITE="${SUITE:-general-zh}"
RESULTS="${RESULTS:-/shared/results}"
# source /shared/venvs/sfteval/bin/activate

# --resume RUN: the first time this shard starts (RESULTS/RUN__shard-I-of-N), after a failure it continues; its
# answers are stored as they come, so a re-run redoes nothing finished.
sfteval run --model "$CKPT" --suite "$SUITE" --backend vllm --out "$RESULTS" --resume "$RUN" --shard auto -q
