"""``python -m vmapc``: the ``vmapc`` command (see :mod:`vmapc.cli`)."""

import sys

from .cli import main

sys.exit(main())
