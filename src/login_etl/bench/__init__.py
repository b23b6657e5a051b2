"""`login-etl bench`: measure the worker end to end and stage by stage, against any SQS
endpoint and PostgreSQL (LocalStack, not moto: moto's queue scans make it too slow to mean
anything). See docs/benchmarks.md for the commands and the numbers."""
