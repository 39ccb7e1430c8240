"""Shards: which items shard I of N evaluates, and where I and N come from (a flag, Slurm, Kubernetes).

Why not ``index % N``: suites list items grouped by task_type, often easy ones first, so striding by position
piles the hard items of one task_type onto the same shard (one job then runs far longer than the others).
Here every task_type is dealt separately: its items are ordered by a salted hash of their id and dealt
round-robin, the deal starting where the previous task_type's left off. So

- the assignment depends only on the items' ids and task_types (and the order in which task_types first
  appear), so it is the same on every machine, in every job;
- within every task_type, shard sizes differ by at most 1, so each shard mixes easy and hard items;
- in total, shard sizes differ by at most 1 as well.

A shard run records its place (:class:`~sfteval.harness.models.ShardInfo`): the index, the count, the
parent run's name and the positions of its items in the whole selection, so ``sfteval merge`` rebuilds the
one run, in the one run's item order, from the shard folders alone.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .models import Item

#: names the rule below; recorded with each shard so a later change of rule cannot mix shards silently
ASSIGNMENT = "sha256(id)-per-task_type-round-robin/v1"
_SALT = "sfteval-shard/v1"


class ShardError(ValueError):
    """A --shard / --shards value (or the job-array environment behind --shard auto) that cannot be used."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"the number of shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(f"shard index {self.index} is out of range for {self.count} shards (0..{self.count - 1})")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_order_key(item_id: str) -> str:
    return hashlib.sha256(f"{_SALT}:{item_id}".encode()).hexdigest()


def assign(items: Sequence[Item], count: int) -> list[int]:
    """The shard of every item (by position): per task_type, hash order, dealt round-robin."""
    by_type: dict[str, list[int]] = {}
    for pos, item in enumerate(items):
        by_type.setdefault(item.task_type, []).append(pos)
    shard_of = [0] * len(items)
    dealt = 0
    for positions in by_type.values():  # task_types in order of first appearance
        for j, pos in enumerate(sorted(positions, key=lambda p: (shard_order_key(items[p].id), p))):
            shard_of[pos] = (dealt + j) % count
        dealt += len(positions)
    return shard_of


def shard_positions(items: Sequence[Item], spec: ShardSpec) -> list[int]:
    """Positions (in ``items``) of the items shard ``spec`` evaluates, in their original order."""
    return [pos for pos, s in enumerate(assign(items, spec.count)) if s == spec.index]


def shard_run_name(parent: str, spec: ShardSpec) -> str:
    """The folder name of one shard of run ``parent``: ``parent__shard-1-of-4``."""
    return f"{parent}__shard-{spec.index}-of-{spec.count}"


_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def _int_env(env: Mapping[str, str], name: str) -> Optional[int]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ShardError(f"--shard auto: ${name}={raw!r} is not an integer") from None


def resolve_shard(value: Optional[str], shards: Optional[int],
                  env: Optional[Mapping[str, str]] = None) -> Optional[ShardSpec]:
    """``--shard I/N``, ``--shard I --shards N``, or ``--shard auto`` (Slurm job arrays, Kubernetes Indexed Jobs).

    Slurm: the index is ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` (an array may start at 1, ``--array=1-8``),
    the count ``SLURM_ARRAY_TASK_COUNT`` (or ``--shards N``). Kubernetes: ``JOB_COMPLETION_INDEX`` with
    ``--shards N`` (the Job's ``completions``; a pod does not see it).
    """
    env = os.environ if env is None else env
    if value is None:
        if shards is not None:
            raise ShardError("--shards N needs --shard (I, or auto)")
        return None
    text = value.strip()
    if text.lower() == "auto":
        return _from_environment(env, shards)
    m = _SPEC.match(text)
    if m:
        index, count = int(m.group(1)), int(m.group(2))
        if shards is not None and shards != count:
            raise ShardError(f"--shard {text} and --shards {shards} disagree on the number of shards")
        return ShardSpec(index, count)
    if text.isdigit():
        if shards is None:
            raise ShardError(f"--shard {text}: give the number of shards too (--shard {text}/N or --shards N)")
        return ShardSpec(int(text), shards)
    raise ShardError(f"--shard {value!r}: expected I/N (e.g. 0/4), I with --shards N, or auto")


def _from_environment(env: Mapping[str, str], shards: Optional[int]) -> ShardSpec:
    task = _int_env(env, "SLURM_ARRAY_TASK_ID")
    if task is not None:
        low = _int_env(env, "SLURM_ARRAY_TASK_MIN") or 0
        count = _int_env(env, "SLURM_ARRAY_TASK_COUNT")
        high = _int_env(env, "SLURM_ARRAY_TASK_MAX")
        if count is None and high is not None:
            count = high - low + 1
        if shards is not None:
            if count is not None and count != shards:
                raise ShardError(f"--shard auto: --shards {shards} but the Slurm array has {count} tasks "
                                 f"(SLURM_ARRAY_TASK_COUNT)")
            count = shards
        if count is None:
            raise ShardError("--shard auto: $SLURM_ARRAY_TASK_ID is set but not $SLURM_ARRAY_TASK_COUNT: pass --shards N")
        if high is not None and high - low + 1 != count:
            raise ShardError(f"--shard auto: the Slurm array {low}-{high} is not contiguous ({count} tasks); "
                             f"use --array={low}-{low + count - 1} (a step or a list of ids cannot be sharded)")
        try:
            return ShardSpec(task - low, count)
        except ShardError as e:
            raise ShardError(f"--shard auto (Slurm task {task}, array min {low}, {count} tasks): {e}") from None
    index = _int_env(env, "JOB_COMPLETION_INDEX")
    if index is not None:
        if shards is None:
            raise ShardError("--shard auto under a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX) needs --shards N "
                             "(the Job's completions)")
        try:
            return ShardSpec(index, shards)
        except ShardError as e:
            raise ShardError(f"--shard auto (JOB_COMPLETION_INDEX={index}): {e}") from None
    raise ShardError("--shard auto: neither $SLURM_ARRAY_TASK_ID (a Slurm job array) nor $JOB_COMPLETION_INDEX "
                     "(a Kubernetes Indexed Job) is set; pass --shard I/N")
