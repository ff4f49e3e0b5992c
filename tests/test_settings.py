"""Settings: HIVEWIRE_* variables and .env files, checked when they are read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bus import NatsSettings


def test_settings_come_from_a_dotenv_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "HIVEWIRE_NATS_URL=nats://a:4222, nats://b:4222\nHIVEWIRE_NATS_REQUEST_TIMEOUT=3\n"
    )
    monkeypatch.setenv("HIVEWIRE_NATS_REQUEST_TIMEOUT", "7.5")
    settings = NatsSettings()
    assert settings.servers() == ["nats://a:4222", "nats://b:4222"]
    assert settings.nats_request_timeout == 7.5


def test_without_a_url_the_local_embedded_server_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HIVEWIRE_NATS_URL", raising=False)
    assert NatsSettings().servers() == ["nats://127.0.0.1:4222"]


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = NatsSettings(nats_user="hive", nats_password="s3cret", _env_file=None)  # type: ignore[call-arg]
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nats_user": "hive"}, "must be set together"),
        ({"nats_tls_cert_file": "cert.pem"}, "go together"),
        ({"nats_request_timeout": 0}, "greater than 0"),
        ({"nats_reconnect_wait": 5, "nats_reconnect_max_wait": 1}, "RECONNECT_MAX_WAIT"),
    ],
)
def test_inconsistent_settings_are_refused_with_the_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NatsSettings(**values, _env_file=None)  # type: ignore[arg-type]
