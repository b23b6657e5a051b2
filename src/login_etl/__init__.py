"""login-etl: SQS login events → validated, PII-masked rows in PostgreSQL, nothing lost."""

__version__ = "0.1.0"
