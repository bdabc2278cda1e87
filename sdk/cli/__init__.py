"""The command line: a thin click shell, one module per command group (``main`` holds the group)."""
