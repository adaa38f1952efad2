"""coevolve: a challenger and a solver, copied from one base model, teach each other to reason.

The pure co-evolution logic (records, votes, rewards, filters, curriculum, domains, recipes)
lives in this package and imports neither torch, verl nor ray; everything that touches the
trainer lives in `coevolve.backend`.
"""

__version__ = "0.1.0"
