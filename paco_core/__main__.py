"""``python -m paco_core ...`` is the ``paco`` command, for environments where the pack was
installed with ``pip install -r requirements.txt`` only (e.g. inside ComfyUI)."""

import sys

from paco_core.cli import main

sys.exit(main())
