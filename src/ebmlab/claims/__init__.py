"""Claims a reader can re-run: each empirical claim of the papers ebmlab implements as a spec (one TOML file per
claim), its recorded results per scale, a verdict computed by a declared rule, and ``benchmarks/claims.md``
generated from them (``ebmlab claims list | run ID | render``).

- :mod:`.spec`: the spec format and its checks;
- :mod:`.verdict`: the rules (the same text is in the README's "Verdicts");
- :mod:`.run`: running a claim at a scale through the bench machinery, and the cost of the paper's scale;
- :mod:`.render`: the table.
"""

from .spec import Claim, load_claims
from .verdict import Verdict, verdict

__all__ = ["Claim", "Verdict", "load_claims", "verdict"]
