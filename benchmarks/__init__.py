"""asv benchmarks of sbibench (run with ``asv run -E existing:same``; see asv.conf.json)."""
