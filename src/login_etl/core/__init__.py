"""The pure core: parse → validate → mask → row. No I/O, no boto3, no psycopg.

Everything here is a plain function or a small callable object, so it is property-tested alone and
shared unchanged by the long-running worker, the Lambda handler and the benchmarks.
"""

from login_etl.core.app_version import decode_app_version, encode_app_version
from login_etl.core.masking import Field, Masked, Masker, Sealer, TinkMasker, TinkSealer
from login_etl.core.model import Loaded, LoginEvent, LoginRow, Message, Outcome, Rejected
from login_etl.core.reasons import KINDS, Invalid, Kind, Problem, Rule
from login_etl.core.transform import Transformer
from login_etl.core.validate import validate

__all__ = [
    "KINDS",
    "Field",
    "Invalid",
    "Kind",
    "Loaded",
    "LoginEvent",
    "LoginRow",
    "Masked",
    "Masker",
    "Message",
    "Outcome",
    "Problem",
    "Rejected",
    "Rule",
    "Sealer",
    "TinkMasker",
    "TinkSealer",
    "Transformer",
    "decode_app_version",
    "encode_app_version",
    "validate",
]
