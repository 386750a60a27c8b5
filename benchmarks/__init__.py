"""df-stack: benchmarks."""
