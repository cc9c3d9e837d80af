"""Signed user-id tokens and id bounds (webpush_kit/identity.py)."""

from __future__ import annotations

import pytest
from itsdangerous import TimestampSigner

from webpush_kit.errors import ValidationError
from webpush_kit.identity import (
    MAX_ID_LENGTH,
    UserTokens,
    check_anonymous_id,
    check_user_id,
)

DAY = 86400


def at(monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    """Move the signer's clock by ``offset`` seconds (itsdangerous reads it here)."""
    now = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now(self) + offset)


def code_of(call: object) -> tuple[str, int]:
    assert callable(call)
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.code, info.value.status


def test_a_token_verifies_to_the_id_it_was_signed_for() -> None:
    tokens = UserTokens("secret", 3600)
    for user_id in ("alice", "42", "ü-ser with spaces", "x" * MAX_ID_LENGTH):
        token = tokens.sign(user_id)
        assert user_id not in token or user_id.isalnum()  # the id is encoded, not hidden
        assert tokens.verify(token) == user_id
    assert tokens.sign("alice") != tokens.sign("bob")


def test_a_token_expires_after_max_age(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = UserTokens("secret", 7 * DAY)
    with monkeypatch.context() as m:
        at(m, -7 * DAY + 60)  # signed almost a week ago
        fresh = tokens.sign("alice")
    with monkeypatch.context() as m:
        at(m, -7 * DAY - 60)  # signed a week and a minute ago
        stale = tokens.sign("alice")
    assert tokens.verify(fresh) == "alice"
    assert code_of(lambda: tokens.verify(stale)) == ("expired_user_token", 403)
    # The same token is still fine for a verifier that accepts older tokens.
    assert UserTokens("secret", 8 * DAY).verify(stale) == "alice"


def test_a_token_verified_before_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = UserTokens("secret", 3600)
    token = tokens.sign("alice")
    assert tokens.verify(token) == "alice"  # checked once: remembered
    assert tokens.verify(token) == "alice"
    with monkeypatch.context() as m:
        at(m, 3600 + 60)
        assert code_of(lambda: tokens.verify(token)) == ("expired_user_token", 403)
    with monkeypatch.context() as m:
        at(m, -60)  # the clock went back: a negative age is refused, as itsdangerous does
        assert code_of(lambda: tokens.verify(token)) == ("expired_user_token", 403)
    assert tokens.verify(token) == "alice"
    assert code_of(lambda: UserTokens("other", 3600).verify(token))[0] == "forged_user_token"


def test_a_token_from_the_future_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = UserTokens("secret", 3600)
    with monkeypatch.context() as m:
        at(m, 2 * DAY)
        future = tokens.sign("alice")
    # A clock that ran ahead when signing: itsdangerous refuses a negative age.
    assert code_of(lambda: tokens.verify(future)) == ("expired_user_token", 403)


@pytest.mark.parametrize("mutate", [
    # one signature character changed (not the last: its low bits are padding)
    lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],
    lambda t: "Ym9i" + t[t.index("."):],  # payload swapped for another id ("bob")
    lambda t: t.split(".")[0],  # signature removed
    lambda t: t + ".extra",
    lambda t: UserTokens("other secret", 3600).sign("alice"),  # another site's key
])
def test_forged_tokens_are_refused(mutate: object) -> None:
    tokens = UserTokens("secret", 3600)
    token = tokens.sign("alice")
    assert callable(mutate)
    forged = mutate(token)
    assert forged != token
    assert code_of(lambda: tokens.verify(forged)) == ("forged_user_token", 403)


def test_tokens_are_bound_to_their_purpose() -> None:
    """A value signed with the same secret for something else (itsdangerous with another
    salt, as Flask's session uses) is not a user token."""
    from itsdangerous import URLSafeTimedSerializer

    other = URLSafeTimedSerializer("secret", salt="cookie-session").dumps("alice")
    assert code_of(lambda: UserTokens("secret", 3600).verify(other))[0] == "forged_user_token"


@pytest.mark.parametrize("value", [None, "", 42, ["t"], "x" * 1025, "ab\ud800.cd", "é.x"])
def test_token_shape_is_checked_first(value: object) -> None:
    tokens = UserTokens("secret", 3600)
    assert code_of(lambda: tokens.verify(value)) == ("invalid_user_token", 403)


def test_a_token_whose_payload_is_not_a_string_is_refused() -> None:
    from itsdangerous import URLSafeTimedSerializer

    from webpush_kit import identity

    raw = URLSafeTimedSerializer("secret", salt=identity._SALT).dumps({"user": "alice"})
    assert code_of(lambda: UserTokens("secret", 3600).verify(raw))[0] == "invalid_user_token"


def test_signing_needs_a_secret_key() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        UserTokens("", 3600)


@pytest.mark.parametrize("value", ["", "   ", "x" * (MAX_ID_LENGTH + 1), 7, None])
def test_user_ids_are_bounded(value: object) -> None:
    assert code_of(lambda: check_user_id(value, field="user_id"))[0] == "invalid_user_id"
    tokens = UserTokens("secret", 3600)
    if isinstance(value, str):
        assert code_of(lambda: tokens.sign(value))[0] == "invalid_user_id"


@pytest.mark.parametrize("value", [
    "a1b2c3d4-0000-4000-8000-000000000000",  # MoEngage / Segment uuid
    "seg:anon@site.example", "A+b/c=d_e.f-g", "x" * 255,
])
def test_anonymous_ids_are_accepted_as_they_are(value: str) -> None:
    assert check_anonymous_id(value) == value


@pytest.mark.parametrize("value", [
    "", "x" * 256, "with space", "tab\there", "new\nline", "é", "<script>", 42, ["a"],
])
def test_anonymous_ids_out_of_bounds_are_refused(value: object) -> None:
    assert code_of(lambda: check_anonymous_id(value))[0] == "invalid_anonymous_id"


def test_no_anonymous_id_is_fine() -> None:
    assert check_anonymous_id(None) is None
