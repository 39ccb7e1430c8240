"""``sfteval view``: the results folder as a local web app for case analysis and human evaluation.

Pages (stable URLs, so reports can link to them; :mod:`.urls` builds them):

- ``/`` the runs; ``/runs/<run>`` one run; ``/runs/<run>/items`` and ``/runs/<run>/item/<id>``
- ``/compare/<a>/<b>`` the diff's task_type x metric heatmap; ``/compare/<a>/<b>/items?...`` filtered items;
  ``/compare/<a>/<b>/item/<id>`` one item in both runs, side by side
- ``/review/...`` review queues (blind pairwise, single grading) whose labels are judgment records

Everything shown from a run (prompts, references, answers, rationales) is untrusted text: templates escape it
(Jinja2 autoescape) and nothing from a run is ever marked safe.
"""
