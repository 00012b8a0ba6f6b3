"""The simulation itself: the Mesa model and its step (`model`, `agents`), the per-(post, person) state (`state`),
feeds and the recommenders that fill them (`feed`, `recommend`), checkpoints and interrupts (`checkpoint`,
`interrupts`), and `runner`, which builds a model from a scenario, runs it and writes its results.

The engine uses the world (`lsbm_sim.world`), the behavior models (`lsbm_sim.behavior`) and the results tables
(`lsbm_sim.analysis`); it never imports the studies that run it many times or the faces that show it.
"""
