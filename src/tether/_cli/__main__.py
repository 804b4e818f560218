"""`python -m tether._cli`: the `tether` command without its console script."""

import sys

from . import main

sys.exit(main())
