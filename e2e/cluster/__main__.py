"""`python -m e2e.cluster run|up`."""

import sys

from e2e.cluster.run import main

sys.exit(main())
