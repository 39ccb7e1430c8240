"""Stages of a run behind one protocol (:class:`~.base.Stage`), found through one registry (:mod:`.registry`).

The built-in stages live with their subject: ``generate.GenerateStage``, ``score.RuleStage``,
``judging.stage.JudgeStage``, ``probes.stage.ProbeStage``.
"""
