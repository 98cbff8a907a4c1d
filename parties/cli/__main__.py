"""``python -m parties.cli``: the ``smpc`` command."""

import sys

from parties.cli.main import main

sys.exit(main())
