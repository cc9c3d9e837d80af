"""Which user id may a browser's callback be linked to.

When the site gives the extension a ``user_id_loader`` (Flask-Login's current user, say),
that id is the only one a callback can claim. Without one, a page carries a token the
server signed for the user id it rendered the page for (``webpush_head(user_id=...)``);
the browser can only echo it back, never make one up. Tokens expire.

Anonymous ids (MoEngage's device uuid, Segment's ``anonymousId``) are not secrets and are
accepted as they are, within bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from webpush_kit.errors import ValidationError
from webpush_kit.messages import lone_surrogate

_SALT = "webpush_kit.user-id"
MAX_ID_LENGTH = 255
_ANON_RE = re.compile(r"[A-Za-z0-9._:@+=/-]{1,255}")
#: Tokens whose signature was checked, kept per verifier (a page load re-posts the same).
_VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Identity:
    """Who a callback speaks for: a verified user id, an anonymous id, or both."""

    user_id: str | None
    anonymous_id: str | None


class UserTokens:
    """Signs and checks user-id tokens with the app's secret key."""

    def __init__(self, secret_key: str | bytes, max_age: int) -> None:
        if not secret_key:
            raise ValueError(
                "signing user tokens needs a secret key: set app.config['SECRET_KEY'] "
                "(or give the extension a user_id_loader)"
            )
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        signer = self._serializer.make_signer(_SALT)
        assert isinstance(signer, TimestampSigner)
        self._signer = signer
        self.max_age = max_age
        # token -> (user id, signing time) of tokens whose signature checked out: the
        # HMAC is not recomputed, the age still is (with the signer's clock and rule).
        self._verified: dict[str, tuple[str, int]] = {}

    def sign(self, user_id: str) -> str:
        check_user_id(user_id, field="user_id")
        return self._serializer.dumps(user_id)

    def verify(self, token: object, *, field: str = "user_token") -> str:
        """The user id a token was signed for; a 403 ValidationError when it is not valid."""
        if not isinstance(token, str) or not token or len(token) > 1024:
            raise ValidationError("expected the user token the page was rendered with",
                                  field=field, code="invalid_user_token", status=403)
        if not token.isascii():
            # Tokens are ASCII (URL-safe base64 and dots): anything else, a lone surrogate
            # included, is refused here instead of failing inside the signature check.
            raise ValidationError("expected the user token the page was rendered with "
                                  "(tokens are ASCII; this one holds non-ASCII characters)",
                                  field=field, code="invalid_user_token", status=403)
        known = self._verified.get(token)
        if known is not None:
            age = self._signer.get_timestamp() - known[1]
            if 0 <= age <= self.max_age:
                return known[0]
            raise _expired(field)
        try:
            value, signed_at = self._serializer.loads(
                token, max_age=self.max_age, return_timestamp=True
            )
        except SignatureExpired:
            raise _expired(field) from None
        except BadSignature:
            raise ValidationError("the user token was not signed by this site",
                                  field=field, code="forged_user_token", status=403) from None
        if not isinstance(value, str):
            raise ValidationError("the user token holds no user id", field=field,
                                  code="invalid_user_token", status=403)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (value, int(signed_at.timestamp()))
        return value


def _expired(field: str) -> ValidationError:
    return ValidationError("the user token has expired: reload the page to get a fresh one",
                           field=field, code="expired_user_token", status=403)


def check_user_id(value: object, *, field: str) -> str:
    """A user id as the store keeps it: 1..255 printable characters of real Unicode text
    (the same rule the store applies, so a token is never signed for an id it refuses)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise ValidationError(f"a non-empty string of at most {MAX_ID_LENGTH} characters",
                              field=field, code="invalid_user_id")
    if lone_surrogate(value):
        raise ValidationError("is not valid Unicode text (it holds a lone surrogate)",
                              field=field, code="invalid_user_id")
    if not value.isprintable():
        raise ValidationError("must not contain control characters",
                              field=field, code="invalid_user_id")
    return value


def check_anonymous_id(value: object, *, field: str = "anonymous_id") -> str | None:
    """Anonymous ids are accepted as they are, but only as bounded, printable tokens."""
    if value is None:
        return None
    if not isinstance(value, str) or not _ANON_RE.fullmatch(value):
        raise ValidationError("an id of up to 255 letters, digits and ._:@+=/- characters",
                              field=field, code="invalid_anonymous_id")
    return value


__all__ = ["Identity", "UserTokens", "check_anonymous_id", "check_user_id"]
