"""The import graph has no arrow from a lower layer to a higher one and no cycle within a layer: data flows
data → methods → trainer → evaluation → presentation → CLI. Every ``import`` in every module is read (module-level
and inside functions), so a lazy import up a layer fails here too. The checks parse source text only: they write
nothing (the tests run in parallel processes beside each other)."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ebmlab"
LAYOUT = SRC.parents[1] / "docs" / "concepts" / "layout.md"

# lowest first; a module may import modules of its own layer or below
LAYERS = [
    {"errors", "metadata", "rng", "types", "plugins"},
    {"distributed", "quadrature", "atomic", "runs", "sessions", "budget", "syncs", "trackers", "compiled", "threads",
     "machine"},  # plumbing: processes, threads, 2D integration, atomic files and run directories
    {"data"},
    {"nets"},
    {"bounds"},
    {"samplers"},
    {"methods"},
    {"metrics"},
    {"options", "config", "recipe", "graphs", "placement", "plots", "present", "export", "branch"},
    {"evaluation", "trainer"},
    {"api", "testing"},
    {"report", "bench", "sr", "semisup"},
    {"claims"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top(module: str) -> str:
    """The first component under ebmlab of a dotted module path ('ebmlab.metrics.density' → 'metrics')."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, text: str | None = None, runtime: bool = False) -> set[str]:
    """The ebmlab modules ``path`` imports (its source ``text``, else the file's), as dotted paths; ``runtime``:
    those run when the code runs, not those under ``if TYPE_CHECKING:`` (annotations only)."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = set()
    tree = ast.parse(path.read_text() if text is None else text)
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in node.body for n in ast.walk(stmt)} if runtime else set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            out |= {n for n in names if n.startswith("ebmlab")}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("ebmlab")}
    return out


def module_name(path: Path) -> str:
    """'src/ebmlab/metrics/density.py' → 'ebmlab.metrics.density' (a package's __init__: the package)."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cycles_of(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of a directed graph {node: nodes it points to}, each once (as found by depth-first search)."""
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


MODULES = {module_name(p) for p in SRC.rglob("*.py")} - {"ebmlab.__main__"}


def module_graph(texts: dict[Path, str] | None = None) -> dict[str, set[str]]:
    """Imports between modules (a package is its __init__): ``from .x import name`` points at module x, or at the
    package x's __init__; ``from . import name`` at the module name, or at the package when name is one of its
    attributes; imports for annotations only (``if TYPE_CHECKING:``) are not followed. The package root is left out: it is the public facade over everything, and the modules that read
    its ``__version__`` do so inside functions. ``texts`` replaces the source of some files (to test the test)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        me = module_name(path)
        if me not in MODULES or me == "ebmlab":
            continue
        targets = set()
        for t in imports(path, (texts or {}).get(path), runtime=True):
            t = t if t in MODULES else t.rpartition(".")[0]
            if t in MODULES and t not in ("ebmlab", me):
                targets.add(t)
        edges[me] = targets
    return edges


def test_every_module_is_in_a_layer_and_imports_none_above_it():
    up = []
    for path in sorted(SRC.rglob("*.py")):
        me = top(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        assert me in RANK, f"{path} is in no layer: add it to LAYERS"
        for target in imports(path):
            other = top(target)
            if other in RANK and RANK[other] > RANK[me]:
                up.append(f"{path.relative_to(SRC)} ({me}) imports {target} ({other})")
    assert not up, "imports up a layer:\n" + "\n".join(up)


def test_no_import_cycle():
    """No module imports, directly or through others, a module that imports it: with the test above, modules of
    one layer import each other one way round only (a cycle has no direction to read the house in, and breaks when
    an import moves to the top of a file: whichever module is imported first sees the other half-made)."""
    cycles = cycles_of(module_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_the_checks_see_an_import_up_a_layer_and_a_cycle():
    """The parser resolves relative imports, inside functions too, from source text alone (nothing is written), so
    the two tests above can fail: a lazy import of the trainer from bounds/ is read as one, and an import of
    report from bench/tables.py (which report imports) closes a cycle."""
    f = SRC / "data" / "toy.py"
    targets = imports(f)
    assert "ebmlab.quadrature" in targets and all(t.startswith("ebmlab.") for t in targets)
    probe = SRC / "bounds" / "_probe_for_test.py"  # never written: its text is given
    assert "ebmlab.trainer" in imports(probe, "def f():\n    from ..trainer import train\n")
    assert cycles_of({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    report = SRC / "report.py"
    assert any("ebmlab.bench.tables" in imports(p) for p in [report]), "report.py reads bench/tables.py"
    tables = SRC / "bench" / "tables.py"
    edited = {tables: tables.read_text() + "\n\ndef _probe():\n    from .. import report  # noqa\n"}
    cycles = cycles_of(module_graph(edited))
    assert ["ebmlab.bench.tables", "ebmlab.report", "ebmlab.bench.tables"] in cycles or \
        ["ebmlab.report", "ebmlab.bench.tables", "ebmlab.report"] in cycles, cycles


def test_every_root_module_is_named_in_the_layout_page():
    """The documentation's layout page (docs/concepts/layout.md) names every module and subpackage at the package
    root: a room added without a line there is unknown to a reader."""
    text = LAYOUT.read_text()
    block = text[text.index("```"):]
    block = block[:block.index("```", 3)]
    named = set(re.findall(r"\b([a-z_]+)(?:\.py|/)", block))
    rooms = {p.stem for p in SRC.glob("*.py") if p.stem not in ("__init__", "__main__")}
    rooms |= {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted(rooms - named)
    assert not missing, f"root modules missing from docs/concepts/layout.md: {missing}"


def test_no_shared_module_names_a_method():
    """Presentation, evaluation and the loop read the registry and metadata; they name no method."""
    from ebmlab.methods import METHODS

    names = set(METHODS) | {"kale", "ebgan", "bib", "lbt", "vgan", "bihm", "vae"}
    shared = ["trainer.py", "placement.py", "evaluation.py", "api.py", "present.py", "report.py", "config.py",
              "options.py", "recipe.py", "runs.py", "graphs.py", "metrics/evaluators.py", "metrics/registry.py",
              *(f"bench/{p.name}" for p in sorted((SRC / "bench").glob("*.py")))]
    hits = []
    for rel in shared:
        code = ast.parse((SRC / rel).read_text())
        for node in ast.walk(code):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                hits.append(f"{rel}: {node.value!r}")
    assert not hits, hits


def test_every_all_is_complete_and_last():
    """A module that declares ``__all__`` (packages' ``__init__`` aside: they re-export) lists every public function
    and class it defines, and declares it as its last statement, where a reader looks for it."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        at = [i for i, n in enumerate(tree.body) if isinstance(n, ast.Assign)
              and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
        if not at:
            continue
        listed = set(ast.literal_eval(tree.body[at[-1]].value))
        public = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and not n.name.startswith("_")}
        rel = path.relative_to(SRC)
        if public - listed:
            problems.append(f"{rel}: __all__ lacks {sorted(public - listed)}")
        if at[-1] != len(tree.body) - 1:
            problems.append(f"{rel}: __all__ is not the last statement")
    assert not problems, "\n".join(problems)
