"""df-stack's project command line and the pipelines that span several parts
(collecting in simulation, training, closed-loop evaluation, the demo)."""
