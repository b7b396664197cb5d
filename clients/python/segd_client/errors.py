"""Errors raised by the client."""

from typing import Any, Dict, Optional


class SegdError(Exception):
    """segd answered with an error (``{"error": {"code", "message", ...}}``) or could not
    be reached after all retries (``status`` is None then)."""

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        code: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details or {}


class FellBehind(SegdError):
    """The change log's retention dropped changes this reader had not seen.

    Re-read the segments' members (the current truth), then continue from
    ``oldest_available - 1`` or from the head.
    """

    def __init__(self, message: str, requested_after: int, oldest_available: int, status=None):
        super().__init__(message, status=status, code="fell_behind")
        self.requested_after = requested_after
        self.oldest_available = oldest_available


class WebhookVerificationError(Exception):
    """A webhook delivery's signature is missing, malformed, wrong or too old."""
