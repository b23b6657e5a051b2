"""Use cases an operator runs on stored data: quarantine replay and rekey.

Each is a function the CLI calls with settings and prints the result of; none of them runs in
the worker's hot path.
"""
