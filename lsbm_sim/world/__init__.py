"""The world a run starts from: its people (`population`), who follows whom (`network`, `graph_files`), the posts
a scenario lists (`content`) and the posts people write as it runs (`posting`); `build` puts people and graph
together from a scenario and a seed.

This layer reads the scenario (`lsbm_sim.scenario`) and the data files it names, and nothing of the engine that
steps the world or of the behavior model that decides reactions.
"""
