"""``python -m vmapc.cli``: the ``vmapc`` command, as ``python -m vmapc`` is."""

import sys

from . import main

sys.exit(main())
