"""The runtime: what owns the delivery guarantee while the service runs.

Intake (pollers and the bounded inbox), the batch committer (transform → commit, no queue), the
worker loop (receive → commit → delete, heartbeat), the worker processes, the one retry policy,
metrics and the /healthz, /readyz and /metrics server, and `wiring`, which builds all of it from
Settings for the CLI, the demo and the Lambda.
"""
