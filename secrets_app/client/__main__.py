"""`python -m secrets_app.client`: the client's command line (see `cli`)."""

import sys

from secrets_app.client.cli import main

sys.exit(main())
