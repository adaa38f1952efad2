"""Generation without verl's GPU servers: the requests, the two engines behind one signature
(`engine.py`), the batching rollout server verl talks to and its replica glue, and the
generator used by eval and the probe."""
