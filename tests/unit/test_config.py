"""Environment files: every problem reported with its key path; secrets only from variables or files outside local."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config
from tests.conftest import ROOT, local_raw_config

ENV_FILES = ["local", "sandbox", "preprod", "production"]
PROD_ENV = {
    "GATEWAY_PUBLIC_URL": "https://gateway.internal.example",
    "GATEWAY_STORE_URL": "sqlite:///var/prod.db",
    "GATEWAY_DB_PASSWORD": "db-password-from-the-environment",
    "GATEWAY_DB_HOST": "db.internal.example",
    "GATEWAY_ID_KEY": "k" * 32,
    "GATEWAY_TENANT": "fintech",
    "GATEWAY_CALLER_KEY_SHA256": "a" * 64,
    "MASTERCARD_US_PARTNER_ID": "2445580000000",
    "MASTERCARD_US_PARTNER_SECRET": "prod-partner-secret-value",
    "MASTERCARD_US_APP_KEY": "prod-app-key-value",
    "THREDD_BASE_URL": "https://api.thredd.example",
    "THREDD_CLIENT_ID": "prod-thredd-client",
    "THREDD_PARTNER_ID": "partner-9",
    "THREDD_APPLICATION_ID": "app-9",
    "THREDD_WEBHOOK_SECRET": "prod-thredd-webhook-secret",
    "GATEWAY_ENCRYPTION_KEY": "e" * 32,
    "MASTERCARD_AU_PARTNER_ID": "2445580000001",
    "MASTERCARD_AU_PARTNER_SECRET": "prod-au-partner-secret-value",
    "MASTERCARD_AU_APP_KEY": "prod-au-app-key-value",
    "MASTERCARD_AU_ACCESS_MODEL": "ADR_OSP",
    "MASTERCARD_AU_APPLICATION_ID": "3000001",
    "STRIPE_UK_SOFTWARE_ID": "sw-123",
    "OB_ORGANISATION_ID": "org-123",
    "OB_SOFTWARE_STATEMENT_FILE": str(Path(__file__).with_name("fixtures") / "ssa.jwt"),
    "OB_TRANSPORT_CERT_FILE": "/etc/gateway/transport.pem",
    "OB_TRANSPORT_KEY_FILE": "/etc/gateway/transport.key",
    "OB_SIGNING_KEY_FILE": "/etc/gateway/signing.key",
    "OB_SIGNING_KID": "kid-1",
    "STRIPE_UK_REDIRECT_URI": "https://app.fintech.example/ob/callback",
    "OB_CONNECT_CONSUMER_KEY": "prod-consumer-key!0123456789",
    "OB_CONNECT_SIGNING_KEY_P12": "/etc/gateway/ob-connect.p12",
    "OB_CONNECT_SIGNING_KEY_PASSWORD": "prod-p12-password",
    "OB_CONNECT_MERCHANT_ID": "merchant-1",
    "OB_CONNECT_MERCHANT_NAME": "Fintech Ltd",
    "OB_CONNECT_REDIRECT_URI": "https://app.fintech.example/obc/callback",
}


def test_local_needs_no_variables() -> None:
    config = load_config(ROOT / "config" / "local.toml", environ={})
    assert config.environment == "local"
    assert "mastercard-us" in config.enabled_adapters()
    assert config.adapters["mastercard-us"].embedded


@pytest.mark.parametrize("name", ENV_FILES[1:])
def test_other_environments_load_with_their_variables(name: str) -> None:
    config = load_config(ROOT / "config" / f"{name}.toml", environ=PROD_ENV)
    assert config.environment == name
    adapter = config.adapters["mastercard-us"]
    assert not adapter.embedded
    assert adapter.settings.partner_secret.reveal() == "prod-partner-secret-value"
    assert "prod-partner-secret-value" not in repr(adapter.settings)
    au = config.adapters["mastercard-au"]
    assert au.settings.access_model == "ADR_OSP" and not au.embedded


@pytest.mark.parametrize("name", ENV_FILES[1:])
def test_missing_variable_is_named(name: str) -> None:
    env = dict(PROD_ENV)
    del env["MASTERCARD_US_PARTNER_SECRET"]
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config" / f"{name}.toml", environ=env)
    assert any("adapters.mastercard-us.partner_secret" in p and "MASTERCARD_US_PARTNER_SECRET" in p
               for p in err.value.problems), err.value.problems


def test_every_problem_has_its_key_path() -> None:
    raw = local_raw_config()
    raw["server"]["port"] = "eighty"
    raw["server"]["colour"] = "blue"
    raw["adapters"]["mastercard-us"]["timeouts"] = {"total": "slow"}
    raw["adapters"]["mastercard-us"]["surprise"] = 1
    raw["adapters"]["nowhere-bank"] = {}
    raw["callers"][0]["scopes"] = ["ais:read", "root"]
    raw["callers"][1]["key_sha256"] = "not-a-hash"
    raw["regions"]["XX"] = "not-configured"
    raw["unexpected"] = True
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    text = "\n".join(err.value.problems)
    for expected in ("server.port", "server: extra fields found (colour)", "adapters.mastercard-us.timeouts.total",
                     "adapters.mastercard-us: extra fields found (surprise)", "adapters.nowhere-bank: unknown provider",
                     "callers[0].scopes: unknown scope 'root'", "callers[1].key_sha256", "regions.XX",
                     "unexpected: unknown key"):
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_literal_secret_refused_outside_local(tmp_path: Path) -> None:
    text = (ROOT / "config" / "production.toml").read_text().replace(
        '"${MASTERCARD_US_PARTNER_SECRET}"', '"written-into-the-file"')
    path = tmp_path / "production.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=PROD_ENV)
    assert any(p.startswith("adapters.mastercard-us.partner_secret: in production a secret must come from")
               for p in err.value.problems), err.value.problems


def test_secret_from_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file-secret\n")
    env = dict(PROD_ENV, MASTERCARD_US_PARTNER_SECRET=f"file:{secret_file}")
    config = load_config(ROOT / "config" / "production.toml", environ=env)
    assert config.adapters["mastercard-us"].settings.partner_secret.reveal() == "from-a-file-secret"


def test_embedded_simulator_refused_in_production(tmp_path: Path) -> None:
    text = (ROOT / "config" / "production.toml").read_text().replace('base_url = "https://api.finicity.com"',
                                                                     'base_url = "embedded"')
    path = tmp_path / "production.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ=PROD_ENV)
    assert any("embedded simulator is not allowed" in p for p in err.value.problems)


OB_CONNECT_URLS = {
    "sandbox": ("https://sandbox.api.mastercard.com/openbanking/connect/api", False),
    "preprod": ("https://api.mastercard.com/openbanking/connect/preprod/api", True),
    "production": ("https://api.mastercard.com/openbanking/connect/api", False),
}


@pytest.mark.parametrize("name", sorted(OB_CONNECT_URLS))
def test_ob_connect_points_at_its_documented_environment(name: str) -> None:
    config = load_config(ROOT / "config" / f"{name}.toml", environ=PROD_ENV)
    adapter = config.adapters["ob-connect"]
    url, live = OB_CONNECT_URLS[name]
    assert adapter.base_url == url and adapter.settings.live is live
    assert adapter.settings.signing_key_password.reveal() == "prod-p12-password"


def test_local_points_ob_connect_at_its_simulator() -> None:
    adapter = load_config(ROOT / "config" / "local.toml", environ={}).adapters["ob-connect"]
    assert adapter.embedded and adapter.settings.local_material and not adapter.settings.live


@pytest.mark.parametrize("name", ENV_FILES)
def test_check_config_accepts_every_environment_file(name: str) -> None:
    env = None if name == "local" else {**os.environ, **PROD_ENV}
    result = _cli("check-config", str(ROOT / "config" / f"{name}.toml"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok (environment {name}" in result.stdout and "ob-connect" in result.stdout


def test_check_config_names_a_missing_ob_connect_secret() -> None:
    env = {k: v for k, v in {**os.environ, **PROD_ENV}.items() if k != "OB_CONNECT_SIGNING_KEY_PASSWORD"}
    result = _cli("check-config", str(ROOT / "config" / "production.toml"), env=env)
    assert result.returncode == 1
    assert "adapters.ob-connect.signing_key_password: environment variable OB_CONNECT_SIGNING_KEY_PASSWORD" \
        in result.stdout


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


def test_check_config_cli_reports_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config" / "local.toml").read_text().replace("port = 8080", "port = \"x\""))
    ok = _cli("check-config", str(ROOT / "config" / "local.toml"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok (environment local" in ok.stdout
    failed = _cli("check-config", str(bad))
    assert failed.returncode == 1
    assert "server.port" in failed.stdout


def test_cli_hash_key() -> None:
    import hashlib

    key = "a-new-key-for-a-product-team-0123"
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "hash-key"], input=key + "\n", capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == hashlib.sha256(key.encode()).hexdigest()
    short = subprocess.run([sys.executable, "-m", "gateway.cli", "hash-key"], input="short\n", capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    assert short.returncode == 2


def test_cli_help_and_providers() -> None:
    help_out = _cli("--help")
    assert help_out.returncode == 0
    for command in ("serve", "check-config", "providers"):
        assert command in help_out.stdout
    matrix = _cli("providers")
    assert matrix.returncode == 0
    assert "mastercard-us" in matrix.stdout and "list_transactions" in matrix.stdout


def test_production_shares_postgresql_with_the_password_from_the_environment() -> None:
    config = load_config(ROOT / "config" / "production.toml", environ=PROD_ENV)
    assert config.store.url.startswith("postgresql://") and config.store.pool_max_size >= config.store.pool_min_size
    assert "db-password-from-the-environment" in config.store.url
    assert "db-password" not in (ROOT / "config" / "production.toml").read_text()


def test_worker_metrics_port_is_a_port() -> None:
    raw = local_raw_config()
    raw["events"]["worker_metrics_port"] = 70000
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert any("worker_metrics_port must be a TCP port" in p for p in err.value.problems), err.value.problems
    config = load_config(ROOT / "config" / "production.toml", environ=PROD_ENV)
    assert config.events.worker_metrics_port == 9464 and config.server.port != 9464
