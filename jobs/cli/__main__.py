"""`python -m jobs.cli ...`: the `crm-metrics` command without its console script (e.g. an EMR step)."""

import sys

from jobs.cli import main

sys.exit(main())
