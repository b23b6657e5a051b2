"""Adapters at the edges: SQS (the message source), PostgreSQL (sink, quarantine, vault, audit
trail), AWS KMS (which wraps the key file), Secrets Manager and SSM (database logins, the key
file), archive targets (a directory, S3) and the one classifier of AWS errors. Each turns its
driver's errors into `login_etl.errors` where they are raised; the core never imports these."""
