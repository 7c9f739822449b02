"""``python -m reasonir_rag``: the same as the ``reasonir-rag`` command."""

import sys

from reasonir_rag.cli.main import main

sys.exit(main())
