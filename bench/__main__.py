"""``python -m bench``: see ``bench.run``."""

from bench.run import run_and_exit

run_and_exit()
