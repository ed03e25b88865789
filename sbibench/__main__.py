"""``python -m sbibench`` runs the ``sbibench`` command."""

import sys

from sbibench.cli import main

sys.exit(main())
