"""`python -m jobcontrol.gateway`."""

import sys

from jobcontrol.gateway.server import main

sys.exit(main())
