"""One message → one outcome: a row to load, or a rejection to quarantine."""

from __future__ import annotations

from login_etl.core.masking import Masker, Sealer
from login_etl.core.model import Loaded, LoginRow, Message, Outcome, Rejected, VaultEntry
from login_etl.core.reasons import Invalid
from login_etl.core.timestamps import utc_date
from login_etl.core.validate import validate


class Transformer:
    """Validates, masks and builds the row; never raises for bad input, only returns Rejected."""

    def __init__(self, masker: Masker, sealer: Sealer) -> None:
        self._masker = masker
        self._sealer = sealer

    def __call__(self, message: Message) -> Outcome:
        event = validate(message.body)
        if isinstance(event, Invalid):
            return self.reject(message, event)
        ip = self._masker.mask("ip", event.ip)
        device_id = self._masker.mask("device_id", event.device_id)
        vault: tuple[VaultEntry, ...] = ()
        if ip.vault or device_id.vault:  # only for over-long values: keep the common path lean
            vault = tuple(m.vault for m in (ip, device_id) if m.vault)
        row = LoginRow(
            user_id=event.user_id,
            device_type=event.device_type,
            masked_ip=ip.token,
            masked_device_id=device_id.token,
            locale=event.locale,
            app_version=event.app_version,
            create_date=utc_date(message.sent_timestamp_ms),
        )
        return Loaded(message.message_id, row, message.sent_timestamp_ms, vault)

    def reject(self, message: Message, invalid: Invalid) -> Rejected:
        """A rejection with the body sealed. The batch committer builds its rejections with it
        too: of a message whose transform raised (`runtime.committer.transform_or_quarantine`,
        which quarantine replay shares) and of a row the database refused."""
        return Rejected(
            message_id=message.message_id,
            reason=invalid.reason,
            sealed_body=self._sealer.seal(message.message_id, message.body),
            sent_timestamp_ms=message.sent_timestamp_ms,
            kind=invalid.kind,
        )
