"""CPU generation: the requests, the batching rollout server verl talks to, its replica glue,
the generator used by eval and the probe, and the fast decoding engine."""
