"""Reasoning blocks (``<think>…</think>``): kept in the record, removed from the answer that is scored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional


@dataclass
class ThinkMarkers:
    open: str = "<think>"
    close: str = "</think>"


def split_think(text: str, markers: Optional[ThinkMarkers]) -> tuple[str, Optional[str], bool]:
    """(answer, think, unclosed): reasoning blocks are kept in the record but not judged.

    Templates that open the block in the prompt emit only the closing marker, so a lone
    closing marker also ends a think block.
    """
    if markers is None:
        return text, None, False
    o, c = re.escape(markers.open), re.escape(markers.close)
    m = re.match(rf"\s*(?:{o})?(.*?){c}(.*)", text, flags=re.S)
    if m:
        return m.group(2).strip(), m.group(1).strip(), False
    m = re.match(rf"\s*{o}(.*)", text, flags=re.S)
    if m:
        return "", m.group(1).strip(), True
    return text, None, False
