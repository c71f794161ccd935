"""Every example in the commands' help is a command the parser accepts, naming methods, data sets and claims that
exist (a path stands for a user's file or directory)."""

import re
import shlex

from ebmlab.cli import EXAMPLES, build_parser


def _commands():
    for name, text in EXAMPLES.items():
        for line in text.splitlines()[1:]:
            line = line.strip()
            if "ebmlab " not in line:
                continue
            cmd = line[line.index("ebmlab ") + len("ebmlab "):]
            for part in re.split(r";\s*ebmlab\s+", re.split(r"\s{2,}", cmd)[0]):
                yield name, shlex.split(part)


def test_every_help_example_parses_and_names_what_exists():
    from ebmlab.claims.spec import load_claims
    from ebmlab.data import dataset_names
    from ebmlab.methods import METHODS

    parser = build_parser()
    data = set(dataset_names())
    claims = {c.id for c in load_claims("benchmarks/claims")}
    seen = 0
    for name, argv in _commands():
        args, extra = parser.parse_known_args(argv)
        assert all("=" in e for e in extra), (name, argv, extra)
        for value in filter(None, [getattr(args, "data", None), *(getattr(args, "methods", "") or "").split(","),
                                   getattr(args, "method", None), getattr(args, "options", None)]):
            is_path = "/" in value or value.endswith((".npz", ".npy", ".csv"))
            assert is_path or value in data or value in METHODS or value == "all", (name, argv, value)
        if getattr(args, "id", None):
            assert args.id in claims, (name, argv)
        seen += 1
    assert seen >= 30
