"""What a run leaves and what it is measured against: the results folder (`results`), the post and cascade
tables built from a run (`tables`), cascade metrics (`metrics`), real cascades and per-post impressions read from
the formats people export (`cascades`, `impressions`), and comparing simulated with real (`compare`).

These modules work on tables, not on a running model: the engine writes through them, the studies read with them.
"""
