"""Sizes of the house, read from a checkout's source text: lines under mypy (the files ``[tool.mypy]`` names in
pyproject.toml), mentions of ``Any``, parameters named ``method`` typed ``Any``, and the lines of the modules a
re-housing splits. Counts non-blank lines of ``src/ebmlab/**/*.py``.

    python benchmarks/redesign/house_numbers.py [ROOT]      # ROOT: a checkout (default: this one)
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path


def lines(path: Path) -> int:
    return sum(1 for ln in path.read_text().splitlines() if ln.strip())


def main(root: Path) -> dict:
    src = root / "src" / "ebmlab"
    files = sorted(src.rglob("*.py"))
    total = sum(lines(f) for f in files)
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    typed: set[Path] = set()
    for entry in cfg:
        p = root / entry
        typed |= set(p.rglob("*.py")) if p.is_dir() else {p}
    under = sum(lines(f) for f in typed if f.is_file())
    any_mentions = sum(len(re.findall(r"\bAny\b", f.read_text())) for f in files)
    method_any = 0
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.arg) and node.arg == "method" and node.annotation is not None:
                method_any += ast.unparse(node.annotation) == "Any"
    sizes = {str(f.relative_to(src)): lines(f) for f in files
             if f.parent.name == "samplers" or f.name in ("runs.py", "rundirs.py", "sessions.py", "trackers.py",
                                                          "plugins.py", "atomic.py")}
    return {"lines": total, "lines_under_mypy": under, "share_under_mypy": round(under / total, 3),
            "any_mentions": any_mentions, "method_params_typed_any": method_any, "module_lines": sizes}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")), indent=1))
