"""The run's machinery: the loop and its phases, what it needs from a backend, the plan, the
console, the ETA and the metrics it writes."""
