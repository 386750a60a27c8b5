"""df-stack: training."""
