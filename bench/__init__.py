"""Herald's load generator (``make bench``; ``python -m bench --help``).

``run`` is the command line, ``targets`` starts and stops the system under
test (with ``herald.testing.topology``), ``phases`` orders the phases and
says what load each offers, ``roles`` holds what each simulated client does,
``harness`` measures, ``report`` builds the table. ``serial_loop.py`` is the
older one-client latency script. Not imported by Herald itself, and imports
nothing from ``tests``.
"""
