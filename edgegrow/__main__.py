"""``python -m edgegrow`` runs the command line (the same as the ``edgegrow`` script)."""
import sys

from .cli import main

sys.exit(main())
