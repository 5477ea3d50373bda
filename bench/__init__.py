"""Benchmarks (`make bench`). Figures are measured here, never asserted in tests."""
