"""Command-line entry points that cut across packages: `python -m tools.<name> --help`."""
