"""The method as pure functions: votes, rewards, filters, the curriculum and the steps between
the trainers (the challenger's questions scored, the solver's dataset built)."""
