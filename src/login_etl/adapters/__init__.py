"""Adapters at the edges: the SQS source and the PostgreSQL sink. The core never imports these."""
