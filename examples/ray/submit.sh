#!/bin/bash
# An evaluation on a running Ray cluster, submitted as a Ray job: the driver runs on the head node and writes the
# run folder there (put RESULTS on shared storage); generation and probes run on the cluster's GPUs.
#
#   RAY_ADDRESS=http://head-node:8265 bash examples/ray/submit.sh
#
# Needs on every node: the same Python with sfteval installed (pip install 'sfteval[ray,vllm]'), the checkpoint
# at the same path. --ray auto joins the cluster the job was submitted to. Stopping the job (or losing the
# head node) leaves every finished answer stored: submit the same command with --resume RUN instead of --run-name.
set -euo pipefail

CKPT="${CKPT:-/shared/ckpt/step-1200}"
RUN="${RUN:-step-1200}"
RESULTS="${RESULTS:-/shared/results}"
REPLICAS="${REPLICAS:-8}"       # engine replicas: with -tp 2, 16 GPUs in all

# RAY_AUTH_MODE=token: Ray 2.60 clusters use token authentication (~/.ray/auth_token) unless it was turned off
RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}" ray job submit --address "${RAY_ADDRESS:?set RAY_ADDRESS to the dashboard of the cluster, e.g. http://head-node:8265}" -- \
  sfteval run --model "$CKPT" --suite general-zh --backend vllm --tensor-parallel-size 2 \
    --ray auto --replicas "$REPLICAS" --out "$RESULTS" --run-name "$RUN" -q
