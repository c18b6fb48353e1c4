"""The panels of each dashboard, one module per dashboard (``dashboards.spec`` assembles them)."""
