"""The ``herald`` command: one entry point, one subcommand per service."""
