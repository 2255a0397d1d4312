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


def test_rendered_log_lines_never_carry_a_secret(capsys) -> None:  # type: ignore[no-untyped-def]
    import structlog

    from gateway.observability import configure_logging

    plain = Secret("partner-secret-in-a-message")
    quoted = Secret('odd"secret\\value')
    configure_logging("json", "info")
    log = structlog.get_logger("test.redaction")
    log.info("upstream_said", detail=f"refused {plain.reveal()}", body={"nested": [quoted.reveal()]},
             headers={"App-Token": "tok-123456"}, note="Authorization: Bearer abc.def.ghi")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    for leaked in ("partner-secret-in-a-message", "odd", "tok-123456", "abc.def.ghi"):
        assert leaked not in out, out
    assert out.count(REDACTED) >= 4


def test_a_persons_identity_is_blanked_like_a_credential() -> None:
    out = redact({"ssn": "999601111", "consumerSsn": "1111", "consumer_ssn": "999-60-1111", "SSN": "x",
                  "birth_date": "1985-04-12", "birthday": {"year": 1985}, "classname": "kept", "business": "kept"})
    assert {k for k, v in out.items() if v == REDACTED} == {
        "ssn", "consumerSsn", "consumer_ssn", "SSN", "birth_date", "birthday"}
    assert out["classname"] == "kept" and out["business"] == "kept"
