"""Multi-turn runs on a real checkpoint: turn 2 is generated after the model's *own* turn-1 answer.

MT-Bench's protocol (and issue 7): consecutive user turns mean "let the model answer in between", so the
prompt rendered for turn 2 must hold the answer stored for turn 1 inside an assistant turn, while an
assistant turn that the item fixes is kept as written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # the demo checkpoints' ChatML template
REFERENCE_NOT_ANSWER = "a reference the model never says"  # turn 2 must carry the answer, not the reference



def _items() -> tuple[list[dict], str]:
    """Two-turn items made of prompts the demo checkpoint was trained on (so turn 1 has a real answer)."""
    from sfteval.harness.demo import demo_items

    demo = {d["id"]: d for d in demo_items()}
    add, add2, upper = demo["add-000"], demo["add-002"], demo["upper-000"]
    items = [
        {"id": "mt-sum-then-upper", "task_type": "multi-turn/follow-up",
         "messages": [{"role": "user", "content": add["prompt"]}, {"role": "user", "content": upper["prompt"]}],
         "reference": [REFERENCE_NOT_ANSWER, upper["reference"]]},
        {"id": "mt-with-system", "task_type": "multi-turn/follow-up",
         "messages": [{"role": "system", "content": "Answer with the number only."},
                      {"role": "user", "content": add2["prompt"]}, {"role": "user", "content": add["prompt"]}],
         "reference": [add2["reference"], add["reference"]]},
        {"id": "mt-fixed-history", "task_type": "multi-turn/fixed",
         "messages": [{"role": "user", "content": add2["prompt"]}, {"role": "assistant", "content": "FIXED ANSWER"},
                      {"role": "user", "content": upper["prompt"]}],
         "reference": upper["reference"]},
    ]
    return items, add["reference"]


def _run(model: Path, suite: Path, out: Path) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "sfteval.harness.cli", "run", "--model", str(model), "--suite", str(suite), "--out", str(out),
         "--run-name", "mt", "--device", "cpu", "--max-new-tokens", "8", "--quiet"],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )
    assert proc.returncode == 0, f"sfteval run exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = (out / "mt" / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.slow
def test_turn_two_follows_the_models_own_first_answer(demo_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    items, first_sum = _items()
    suite = tmp_path / "two_turns.jsonl"
    suite.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
    gens = _run(demo_checkpoints["v1"], suite, tmp_path / "runs")
    by = {(g["item_id"], g["turn"]): g for g in gens}
    assert set(by) == {("mt-sum-then-upper", 0), ("mt-sum-then-upper", 1), ("mt-with-system", 0),
                       ("mt-with-system", 1), ("mt-fixed-history", 0)}
    assert all(g["status"] == "ok" for g in gens)

    for item in items[:2]:
        item_id = item["id"]
        first_user, second_user = (m["content"] for m in item["messages"] if m["role"] == "user")
        turn1, turn2 = by[(item_id, 0)], by[(item_id, 1)]
        answer = turn1["answer"] or " "  # an empty answer is sent as a single space
        prompt1, prompt2 = turn1["prompt"], turn2["prompt"]
        assert prompt1 and prompt2, "the hf backend stores the rendered prompt text"
        # turn 2 = turn 1's prompt + the stored turn-1 answer as an assistant turn + the second user turn
        assistant_turn = f"{IM_START}assistant\n{answer}{IM_END}"
        assert assistant_turn in prompt2, (answer, prompt2)
        assert prompt2.startswith(prompt1.removesuffix(f"{IM_START}assistant\n"))
        assert prompt2.index(first_user) < prompt2.index(assistant_turn) < prompt2.index(second_user)
        assert prompt2.endswith(f"{IM_START}assistant\n"), "turn 2 is rendered with a generation prompt"
        assert second_user not in prompt1
        # the stored messages say the same: the model's own answer sits in the assistant slot
        msgs = turn2["prompt_messages"]
        assert [m["role"] for m in msgs if m["role"] != "system"] == ["user", "assistant", "user"]
        assert next(m for m in msgs if m["role"] == "assistant")["content"] == answer

    # the first item is a sum the checkpoint was trained on: its own answer is the trained one, and turn 2
    # carries that answer, not the item's turn-1 reference
    assert by[("mt-sum-then-upper", 0)]["answer"] == first_sum
    assert REFERENCE_NOT_ANSWER not in by[("mt-sum-then-upper", 1)]["prompt"]

    # a fixed assistant turn is kept verbatim and answered once, not replaced by a model answer
    fixed = by[("mt-fixed-history", 0)]
    assert f"{IM_START}assistant\nFIXED ANSWER{IM_END}" in fixed["prompt"]
