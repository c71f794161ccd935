"""User-facing errors. The CLI prints them as one line, without a traceback."""

from typing import Any, Iterable


class EbmlabError(Exception):
    """An error caused by input (options, files, data) that the user can fix; the message says how."""


class DivergenceError(EbmlabError):
    """Training produced a non-finite loss or parameter; the last good checkpoint is kept."""


class NonNormalisableError(EbmlabError):
    """exp(-E) does not decay at the edge of the integration box, so log Z over R^D is not finite."""

    box_quadrature: Any = None  # the quadrature of the model restricted to the data box, when one was run


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """'; did you mean X?' for the choice closest to ``name`` (difflib's ratio ≥ 0.6), else ''."""
    import difflib

    hit = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {hit[0]!r}?" if hit else ""


def require_int(name: str, value: object, lo: int, unit: str = "") -> int:
    """``value`` as an integer ≥ ``lo`` (bools refused), or one EbmlabError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise EbmlabError(f"{name} must be an integer ≥ {lo}{unit}, got {value!r}")
    return value
