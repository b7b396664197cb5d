"""Consumer library for segd trigger systems.

- :class:`Client`: membership checks (single and bulk), the change feed by long-poll
  (:meth:`Client.changes`, :meth:`Client.iter_changes`) and Server-Sent Events
  (:meth:`Client.stream_changes`), each resumable from the last processed sequence.
- :func:`verify_webhook`: checks a webhook delivery's signature, in segd's own
  ``X-Segd-Signature`` scheme or the Standard Webhooks scheme.
- :class:`FileCheckpoint`: keeps a consumer's position across restarts.
"""

from .checkpoint import FileCheckpoint, MemoryCheckpoint
from .client import Change, ChangesPage, Client
from .errors import FellBehind, SegdError, WebhookVerificationError
from .retry import RetryPolicy
from .webhooks import (
    sign_segd,
    sign_standard,
    verify_segd_signature,
    verify_standard_webhook,
    verify_webhook,
)

__all__ = [
    "Change",
    "ChangesPage",
    "Client",
    "FellBehind",
    "FileCheckpoint",
    "MemoryCheckpoint",
    "RetryPolicy",
    "SegdError",
    "WebhookVerificationError",
    "sign_segd",
    "sign_standard",
    "verify_segd_signature",
    "verify_standard_webhook",
    "verify_webhook",
]
