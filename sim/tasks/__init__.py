"""Simulated tasks: the task interface (sim.tasks.base.SimTask) and its implementations.

A task config's `sim:` section names one with `_target_` (e.g.
`sim.tasks.swap_fruit.SwapFruitTask`); evaluation.sim_task instantiates it. Importing
this package loads no MuJoCo (the implementations import sim.env, which does).
"""
