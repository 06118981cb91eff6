"""CLI command groups, one module per domain; `byteleap.cli` mounts them."""
