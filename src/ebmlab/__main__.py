"""``python -m ebmlab ...``, the same as the ``ebmlab`` command (and what ``torchrun -m ebmlab`` starts)."""

import sys

from .cli import main

sys.exit(main())
