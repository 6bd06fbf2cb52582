"""``python -m convnet``: the same as the ``convnet`` command."""
import sys

from .cli.main import main

sys.exit(main())
