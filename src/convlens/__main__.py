"""``python -m convlens`` is the ``convlens`` command."""

import sys

from convlens.cli import main

sys.exit(main())
