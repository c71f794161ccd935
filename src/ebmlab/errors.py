"""User-facing errors. The CLI prints them as one line, without a traceback."""

from typing import Any


class EbmlabError(Exception):
    """An error caused by input (options, files, data) that the user can fix; the message says how."""


class DivergenceError(EbmlabError):
    """Training produced a non-finite loss or parameter; the last good checkpoint is kept."""


class NonNormalisableError(EbmlabError):
    """exp(-E) does not decay at the edge of the integration box, so log Z over R^D is not finite."""

    box_quadrature: Any = None  # the quadrature of the model restricted to the data box, when one was run
