"""A Griffe extension for the API reference: the docstrings write cross-references as Sphinx roles
(``:func:`run```, ``:class:`~ebmlab.placement.Placement```), which mkdocstrings shows as raw text. Each role becomes
an autorefs link where its target is a full ``ebmlab.`` path that the reference documents, and inline code
otherwise (a relative name, or an object the reference leaves out), so that the strict build never meets an
unresolved link."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc):`(~?)([^`]+)`")
API = Path(__file__).resolve().parents[1] / "reference" / "api.md"


def _documented() -> set[str]:
    """The objects the API page documents (its ``::: path`` lines and their listed members)."""
    text = API.read_text() if API.is_file() else ""
    out: set[str] = set()
    for hit in re.finditer(r"^::: (\S+)(?:\n    options:\n      members: \[([^\]]*)\])?", text, re.M):
        out.add(hit[1])
        out |= {f"{hit[1]}.{m.strip()}" for m in (hit[2] or "").split(",") if m.strip()}
    return out


class SphinxRoles(griffe.Extension):
    def __init__(self) -> None:
        self.documented = _documented()

    def _rewrite(self, match: re.Match[str]) -> str:
        short, target = match[1] == "~", match[2]
        shown = target.rsplit(".", 1)[-1] if short else target
        if target in self.documented:
            return f"[`{shown}`][{target}]"
        return f"`{shown}`"

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = ROLE.sub(self._rewrite, obj.docstring.value)
