"""The runtime: what owns the delivery guarantee while the service runs.

Intake (pollers and the bounded inbox), the pipeline (batch → transform → commit → delete), the
worker processes, the one retry policy, metrics and the /healthz, /readyz and /metrics server,
and `wiring`, which builds all of it from Settings for the CLI, the demo and the Lambda.
"""
