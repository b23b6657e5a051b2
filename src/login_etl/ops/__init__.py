"""Use cases an operator runs on stored data: recovery (reveal, quarantine show/list, audit), key
administration, rekey, quarantine replay and migrate.

Each is a function the CLI calls with settings, returning a typed result the CLI prints; none of
them runs in the worker's hot path.
"""
