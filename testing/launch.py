"""``python -m herald.testing.launch <herald command...>``: ``herald`` with some loggers at DEBUG.

Tests of process topologies wait for log events that Herald writes at DEBUG
(``long poll parked``) instead of sleeping. ``herald`` logs at INFO and has
no option to change that (and gets none for tests); this launcher sets the
loggers named in ``HERALD_TESTING_DEBUG_LOGGERS`` (comma-separated, e.g.
``herald``) to DEBUG, then runs ``herald.cli.main`` exactly as the console
script does. Herald's log setup sets only the root's and some libraries'
levels, so the named loggers keep theirs, and the root handler prints what
they let through.

Used by ``Topology`` when its ``debug_loggers`` is set. Must not change
anything else about the process.
"""

from __future__ import annotations

import logging
import os
import sys

#: The environment variable naming the loggers to set to DEBUG.
DEBUG_LOGGERS_ENV = "HERALD_TESTING_DEBUG_LOGGERS"


def main() -> int:
    for name in filter(None, os.environ.get(DEBUG_LOGGERS_ENV, "").split(",")):
        logging.getLogger(name.strip()).setLevel(logging.DEBUG)
    from herald.cli.main import main as herald_main

    return herald_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
