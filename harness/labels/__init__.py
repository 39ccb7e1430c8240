"""Human labels and judge-human agreement.

A label is a :class:`~sfteval.harness.models.Judgment` made by a person (``scorer = "human:<reviewer>"``): single
grading of one answer (per-dimension 1-10 scores, overall, usable, comment) in the run folder's
``labels.jsonl``, or a blind pairwise verdict (candidate / baseline / tie / both bad, with the seat each answer
was shown in) in the pair folder ``<B>/pairs/<A>/labels.jsonl``. Labels are keyed by the content judged (the
item's and the answers' hashes): a label never silently applies to a changed answer, an edit appends a new
record with the same key (the latest counts, the history stays).

- :mod:`.records`: building, writing (locked, fsynced) and reading label records
- :mod:`.agreement`: the statistics (weighted kappa, Spearman, mean absolute difference, bootstrap intervals)
- :mod:`.collect`: which judge value meets which human value, for a run and for a pair of runs
- :mod:`.exchange`: the documented JSONL format of ``sfteval labels export`` / ``import``
- :mod:`.report`: the agreement section in markdown
- :mod:`.stage`: the ``agreement`` block of summary.json and the run report's section
"""
