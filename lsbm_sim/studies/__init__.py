"""Many simulations toward one answer: sweeps over seeds and parameters (`sweep`), calibration to real data
(`calibrate`), what-if studies of one post (`explain`, `optimize`), landmark experiments in silico
(`replications`), and distilling a fine-tuned behavior model into the default head (`distill`).

Studies run the engine (`lsbm_sim.engine.runner`) and read results (`lsbm_sim.analysis`); the faces (`cli`,
`app`, `serve`) call them.
"""
