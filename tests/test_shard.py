"""Which items a shard gets (--shard I/N) and where I and N come from under Slurm and Kubernetes.

The balance properties are checked by counting, item by item, against the definition (every item in exactly one
shard; per task_type and in total, shard sizes differ by at most 1), not against the assignment code's recipe.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sfteval.harness.models import Item
from sfteval.harness.shard import ShardError, ShardSpec, assign, resolve_shard, shard_positions, shard_run_name
from sfteval.harness.suite import load_suite


def make_items(sizes: dict[str, int]) -> list[Item]:
    return [Item(id=f"{t}-{i:03d}", task_type=t, prompt=f"q {t} {i}") for t, n in sizes.items() for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_every_item_in_exactly_one_shard_and_sizes_balanced_per_task_type_and_in_total(count: int) -> None:
    items = make_items({"math/hard": 37, "math/easy": 5, "knowledge": 64, "writing": 1, "code/python": 13})
    shards = [shard_positions(items, ShardSpec(i, count)) for i in range(count)]
    seen = Counter(p for s in shards for p in s)
    assert sorted(seen) == list(range(len(items))) and set(seen.values()) == {1}
    for task_type in {it.task_type for it in items}:
        sizes = [sum(items[p].task_type == task_type for p in s) for s in shards]
        assert max(sizes) - min(sizes) <= 1, (task_type, sizes)
    totals = [len(s) for s in shards]
    assert max(totals) - min(totals) <= 1, totals
    for s in shards:  # positions come back in suite order
        assert s == sorted(s)


def test_hard_items_listed_first_are_spread_over_every_shard() -> None:
    """`index % N` on a suite listing 4 hard items per block of 4 gives one shard every hard item; dealing by a
    hash of the id within each task_type gives each shard a share of them."""
    items = [Item(id=f"x{i}", task_type="reasoning", prompt="p", tags=["hard"] if i % 4 == 0 else [])
             for i in range(400)]
    naive = Counter(i % 4 for i, it in enumerate(items) if "hard" in it.tags)
    assert len(naive) == 1  # the complaint
    shard_of = assign(items, 4)
    hard = Counter(shard_of[i] for i, it in enumerate(items) if "hard" in it.tags)
    assert len(hard) == 4 and min(hard.values()) >= 15, hard


def test_same_assignment_whatever_the_machine_or_process() -> None:
    """Every job of an array computes the assignment on its own: it must come out the same each time."""
    import subprocess
    import sys

    code = "from sfteval.harness.shard import assign; from sfteval.harness.suite import load_suite; " \
           "print(assign(load_suite('demo').items, 3))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert out.strip() == str(assign(load_suite("demo").items, 3))


def test_shuffled_suite_keeps_each_items_shard_within_a_task_type_rotation() -> None:
    items = make_items({"a": 20})
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    by_id = dict(zip((it.id for it in items), assign(items, 3)))
    again = dict(zip((it.id for it in shuffled), assign(shuffled, 3)))
    assert by_id == again  # hash order, not file order, decides


def test_shard_spec_parsing() -> None:
    assert resolve_shard("1/4", None, env={}) == ShardSpec(1, 4)
    assert resolve_shard(" 0 / 2 ", None, env={}) == ShardSpec(0, 2)
    assert resolve_shard("3", 4, env={}) == ShardSpec(3, 4)
    assert resolve_shard(None, None, env={}) is None
    for value, shards, words in [("4/4", None, "out of range"), ("1/0", None, "at least 1"), ("x", None, "expected I/N"),
                                 ("2", None, "number of shards"), ("1/4", 3, "disagree"), (None, 3, "needs --shard")]:
        with pytest.raises(ShardError, match=words):
            resolve_shard(value, shards, env={})
    assert shard_run_name("v2", ShardSpec(1, 4)) == "v2__shard-1-of-4"


def test_shard_auto_under_slurm_arrays() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0",
           "SLURM_ARRAY_TASK_MAX": "7"}
    assert resolve_shard("auto", None, env=env) == ShardSpec(3, 8)
    # --array=1-8: task ids start at 1, shards at 0
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_MAX": "8"}
    assert resolve_shard("auto", None, env=env) == ShardSpec(0, 8)
    assert resolve_shard("auto", 8, env={**env, "SLURM_ARRAY_TASK_ID": "8"}) == ShardSpec(7, 8)
    with pytest.raises(ShardError, match="SLURM_ARRAY_TASK_COUNT"):
        resolve_shard("auto", 4, env=env)
    with pytest.raises(ShardError, match="not contiguous"):  # --array=0-14:2
        resolve_shard("auto", None, env={"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "8",
                                         "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "14"})
    with pytest.raises(ShardError, match="pass --shards N"):
        resolve_shard("auto", None, env={"SLURM_ARRAY_TASK_ID": "0"})
    assert resolve_shard("auto", 2, env={"SLURM_ARRAY_TASK_ID": "1"}) == ShardSpec(1, 2)


def test_shard_auto_under_kubernetes_indexed_jobs() -> None:
    assert resolve_shard("auto", 5, env={"JOB_COMPLETION_INDEX": "4"}) == ShardSpec(4, 5)
    with pytest.raises(ShardError, match="needs --shards N"):
        resolve_shard("auto", None, env={"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(ShardError, match="out of range"):
        resolve_shard("auto", 4, env={"JOB_COMPLETION_INDEX": "4"})
    with pytest.raises(ShardError, match="neither"):
        resolve_shard("auto", 4, env={})
    with pytest.raises(ShardError, match="not an integer"):
        resolve_shard("auto", 4, env={"JOB_COMPLETION_INDEX": "one"})
