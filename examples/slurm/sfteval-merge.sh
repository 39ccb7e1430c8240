#!/bin/bash
# Merge the shards written by examples/slurm/sfteval-array.sh into one run (seconds; no GPU).
#
#   sbatch --dependency=afterok:<ARRAY_JOBID> examples/slurm/sfteval-merge.sh
#
# It names any shard that is missing, unfinished or from another evaluation, and writes nothing then.
#SBATCH --job-name=sfteval-merge
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=00:30:00
#SBATCH --output=logs/sfteval-merge-%j.out
set -euo pipefail

RUN="${RUN:-step-1200}"
RESULTS="${RESULTS:-/shared/results}"
# source /shared/venvs/sfteval/bin/activate

sfteval merge "$RESULTS/${RUN}__shard-*" --into "$RUN" --results "$RESULTS"
