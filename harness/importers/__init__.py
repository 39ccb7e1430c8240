"""Importers: third-party eval sets -> sfteval suite folders.

Each format lives in its own module and is registered by name under the ``sfteval.importers`` entry points
(a plugin package adds formats the same way);
:func:`import_suite` reads everything first (so a broken record aborts before anything is
written), validates every item, then writes the suite atomically.
"""

from __future__ import annotations

from pathlib import Path

from ..models import Item, SuiteConfig, TaskTypeSettings
from ..suite import Suite, SuiteError
from .base import Importer, ImportOptions, importers, load_task_type_map, to_items

__all__ = ["ImportOptions", "Importer", "import_suite", "importers", "load_task_type_map"]


def import_suite(fmt: str, src: Path | str, dest: Path | str, opts: ImportOptions | None = None,
                 *, force: bool = False) -> Suite:
    """Convert SRC (format ``fmt``) into a validated suite folder at DEST and return it."""
    from ..suitetools.writer import write_suite

    opts = opts or ImportOptions()
    src, dest = Path(src), Path(dest)
    known = importers()
    importer = known.get(fmt)
    if importer is None:
        raise SuiteError(src, f"unknown format {fmt!r} (known: {', '.join(sorted(known))})")
    if opts.references is not None and not importer.takes_references:
        raise SuiteError(opts.references, f"format {fmt!r} takes no reference-answer file")
    for target in opts.field_map:
        if target not in importer.fields and not (target.startswith("meta.") and "meta.*" in importer.fields):
            raise SuiteError(src, f"--map {target}=...: {fmt} has no field {target!r} "
                             f"(mappable: {', '.join(importer.fields)})")
    if not src.exists():
        raise SuiteError(src, "no such file or folder")
    drafts = importer.read(src, opts)
    if not drafts:
        raise SuiteError(src, "no records to import")
    items = to_items(drafts, opts)
    config = importer.config().model_copy(update={"name": opts.name or dest.name})
    config.description = config.description or f"Imported from {src.name} ({fmt})."
    config.task_types = _settings_with_answer_types(items, config)
    intro = (f"Imported by `sfteval suites import --format {fmt}` from `{src.name}`"
             + (f" with reference answers from `{opts.references.name}`" if opts.references else "")
             + f". {importer.description}")
    return write_suite(dest, {"items.jsonl": items}, config, intro, force=force)


def _settings_with_answer_types(items: list[Item], config: SuiteConfig) -> dict[str, TaskTypeSettings]:
    """Keep the format's settings for task_types that exist; add answer_type where one level agrees on it.

    Items carry their own answer_type too; the suite.yaml entry documents it per task_type and lets
    items added by hand later inherit it.
    """
    kinds: dict[str, set] = {}
    for it in items:
        for lvl in it.task_type_levels:
            kinds.setdefault(lvl, set()).add(it.answer_type)
    out: dict[str, TaskTypeSettings] = {}
    for lvl in sorted(kinds):
        settings = config.task_types.get(lvl, TaskTypeSettings())
        parent = lvl.split("/")[0]
        uniform = next(iter(kinds[lvl])) if len(kinds[lvl]) == 1 else None
        if uniform and not ("/" in lvl and len(kinds[parent]) == 1):  # the first level already says it
            settings = settings.model_copy(update={"answer_type": uniform})
        if settings.model_dump(exclude_none=True):
            out[lvl] = settings
    return out
