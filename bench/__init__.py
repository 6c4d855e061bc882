"""Herald's load generator (``make bench``; ``python -m bench --help``).

``run`` starts the system under test and orders the phases, ``roles`` holds
what each simulated client does, ``harness`` measures. ``serial_loop.py`` is
the older one-client latency script. Not imported by Herald itself.
"""
