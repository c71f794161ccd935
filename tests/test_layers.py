"""The import graph has no arrow from a lower layer to a higher one: data flows data → methods → trainer →
evaluation → presentation → CLI. Every ``import`` in every module is read (module-level and inside functions), so a
lazy import up a layer fails here too."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ebmlab"

# lowest first; a module may import modules of its own layer or below
LAYERS = [
    {"errors", "metadata", "rng"},
    {"distributed", "quadrature", "runs", "budget", "syncs"},  # plumbing: processes, 2D integration, atomic files and run directories
    {"data"},
    {"nets"},
    {"bounds"},
    {"samplers"},
    {"methods"},
    {"metrics"},
    {"options", "config", "recipe", "graphs", "plots", "present", "export"},
    {"evaluation", "trainer"},
    {"api"},
    {"report", "bench", "sr", "semisup"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top(module: str) -> str:
    """The first component under ebmlab of a dotted module path ('ebmlab.metrics.density' → 'metrics')."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """The ebmlab modules ``path`` imports, as dotted paths."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


def test_the_check_sees_an_import_up_a_layer(tmp_path):
    """The parser resolves relative imports, inside functions too (so the test above can fail)."""
    f = SRC / "data" / "toy.py"
    targets = imports(f)
    assert "ebmlab.quadrature" in targets and all(t.startswith("ebmlab.") for t in targets)
    probe = SRC / "bounds" / "_probe_for_test.py"
    probe.write_text("def f():\n    from ..trainer import train\n")
    try:
        assert "ebmlab.trainer" in imports(probe)
    finally:
        probe.unlink()


def test_no_shared_module_names_a_method():
    """Presentation, evaluation and the loop read the registry and metadata; they name no method."""
    from ebmlab.methods import METHODS

    names = set(METHODS) | {"kale", "ebgan", "bib", "lbt", "vgan", "bihm", "vae"}
    shared = ["trainer.py", "evaluation.py", "api.py", "present.py", "report.py", "bench.py", "config.py",
              "options.py", "recipe.py", "runs.py", "metrics/evaluators.py", "metrics/registry.py"]
    hits = []
    for rel in shared:
        code = ast.parse((SRC / rel).read_text())
        for node in ast.walk(code):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                hits.append(f"{rel}: {node.value!r}")
    assert not hits, hits
