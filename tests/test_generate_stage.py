"""Pure parts of the generate stage: multi-turn conversations and reasoning blocks."""

from __future__ import annotations

from sfteval.harness.generate import conversation_for_turn
from sfteval.harness.think import ThinkMarkers, split_think
from sfteval.harness.models import Item


def test_consecutive_user_turns_get_the_models_own_answers() -> None:
    item = Item.model_validate({"id": "m", "task_type": "x", "messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
        {"role": "user", "content": "U2"}, {"role": "user", "content": "U3"}]})
    assert item.n_answer_turns == 3
    turn0 = conversation_for_turn(item, 0, [])
    assert [(m.role, m.content) for m in turn0] == [("system", "S"), ("user", "U1")]
    turn2 = conversation_for_turn(item, 2, ["A1", "A2"])
    assert [(m.role, m.content) for m in turn2] == [
        ("system", "S"), ("user", "U1"), ("assistant", "A1"), ("user", "U2"), ("assistant", "A2"), ("user", "U3")]


def test_fixed_assistant_turns_are_history_not_generated() -> None:
    item = Item.model_validate({"id": "m", "task_type": "x", "messages": [
        {"role": "user", "content": "U1"}, {"role": "assistant", "content": "fixed"},
        {"role": "user", "content": "U2"}]})
    assert item.n_answer_turns == 1
    assert [m.content for m in conversation_for_turn(item, 0, [])] == ["U1", "fixed", "U2"]


def test_split_think() -> None:
    m = ThinkMarkers()
    assert split_think("<think>hmm</think>\n\nParis.", m) == ("Paris.", "hmm", False)
    assert split_think("hmm</think>Paris.", m) == ("Paris.", "hmm", False)  # template opened the block
    assert split_think("<think>still thinking", m) == ("", "still thinking", True)
    assert split_think("Paris.", m) == ("Paris.", None, False)
    assert split_think("<think>x</think>y", None) == ("<think>x</think>y", None, False)
    assert split_think("[R]a[/R]b", ThinkMarkers("[R]", "[/R]")) == ("b", "a", False)
