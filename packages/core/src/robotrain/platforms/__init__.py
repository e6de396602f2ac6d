"""Built-in platforms."""
