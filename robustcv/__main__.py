"""``python -m robustcv`` runs the command line."""

import sys

from robustcv.cli.main import main

sys.exit(main())
