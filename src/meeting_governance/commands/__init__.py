"""CLI command groups, one module per area (cli.py assembles them)."""
