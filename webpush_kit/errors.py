"""One catalogue of the errors webpush_kit raises.

Every error says what is wrong, where (a settings key or a request field), and how to fix
it, so that a start-up failure or a 4xx body is useful on its own.
"""

from __future__ import annotations

from typing import Any


class WebPushKitError(Exception):
    """Base class: ``code`` is a stable machine-readable token, ``message`` is for people."""

    code: str = "webpush_kit_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body every endpoint answers with: ``{"error": {...}}``."""
        return {"error": {"code": self.code, "message": self.message}}


class ConfigError(WebPushKitError, ValueError):
    """A settings value is wrong. Raised at start-up, never per request."""

    code = "invalid_setting"

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"setting {key!s} = {value!r} is not valid: {allowed}")


class ValidationError(WebPushKitError, ValueError):
    """Input from outside (a browser, a file, a caller) is wrong.

    ``field`` names the offending member with a dotted path (``keys.p256dh``);
    ``status`` is the HTTP status an adapter should answer with.
    """

    code = "invalid_input"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        self.field = field
        self.status = status
        super().__init__(f"{field}: {message}" if field else message, code=code)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.field is not None:
            body["error"]["field"] = self.field
        return body
