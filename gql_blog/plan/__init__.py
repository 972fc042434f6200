"""The planned read path: plans built once per document, run level by level (see planner.py)."""
