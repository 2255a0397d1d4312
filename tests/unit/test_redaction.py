"""The log redactor: secret keys blanked at any depth, registered secret values removed anywhere."""
from __future__ import annotations

from gateway.observability import REDACTED, redact
from gateway.secrets import Secret


def test_secret_keys_blanked_at_any_depth() -> None:
    out = redact({"headers": {"Finicity-App-Token": "abc123", "Authorization": "Bearer xyz"},
                  "body": {"partnerSecret": "s3cr3t", "partnerId": "1445"}})
    assert out["headers"]["Finicity-App-Token"] == REDACTED
    assert out["headers"]["Authorization"] == REDACTED
    assert out["body"]["partnerSecret"] == REDACTED
    assert out["body"]["partnerId"] == "1445"


def test_registered_secret_values_removed_from_free_text() -> None:
    secret = Secret("very-secret-value-42")
    text = redact(f"upstream said: bad secret {secret.reveal()} and Bearer abc.def")
    assert "very-secret-value-42" not in text and "abc.def" not in text
    assert repr(secret) == "Secret('**********')" and "very" not in str(secret)
