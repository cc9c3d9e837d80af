"""webpush_kit: web push for real websites."""

from __future__ import annotations

from webpush_kit.errors import ConfigError, ValidationError, WebPushKitError

__all__ = ["ConfigError", "ValidationError", "WebPushKitError"]
__version__ = "0.1.0"
