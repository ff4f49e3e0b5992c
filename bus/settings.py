"""Process settings from the environment: NATS (``HIVEWIRE_*``, ``.env``) and telemetry (``OTEL_*``)."""

from __future__ import annotations

import ssl
import urllib.parse
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_NATS_URL", "NatsSettings", "TelemetrySettings", "check_nats_url", "describe_error"]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
_SCHEMES = ("nats", "tls", "ws", "wss")


def check_nats_url(value: str) -> str:
    """``value`` if every comma-separated entry is a NATS URL (``nats://host:port`` and the like).

    Raises:
        ValueError: an entry is not one, said in a sentence that names it.
    """
    servers = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not servers:
        raise ValueError("the NATS URL is empty")
    for server in servers:
        parsed = urllib.parse.urlsplit(server)
        schemes = ", ".join(f"{scheme}://" for scheme in _SCHEMES)
        if parsed.scheme not in _SCHEMES:
            hint = " (that is the gateway's kind of URL)" if parsed.scheme in ("http", "https") else ""
            raise ValueError(
                f"{server!r} is not a NATS URL{hint}: use {schemes} with a host, as in nats://127.0.0.1:4222"
            )
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"{server!r} is not a NATS URL: its port is not a number") from None
        if not parsed.hostname:
            raise ValueError(f"{server!r} is not a NATS URL: it names no host")
    return value


def describe_error(error: ValidationError) -> str:
    """A settings error in one line, by variable: ``HIVEWIRE_NATS_URL: 'x' is not a NATS URL: ...``."""
    return "; ".join(
        f"HIVEWIRE_{'_'.join(str(part) for part in e['loc']).upper()}: "
        + str(e["msg"]).removeprefix("Value error, ")
        for e in error.errors()
    )


class NatsSettings(BaseSettings):
    """How a process reaches NATS, and how the embedded server is run.

    Every process kind's settings class extends this one, so ``HIVEWIRE_NATS_URL``
    and friends mean the same thing everywhere.
    """

    model_config = SettingsConfigDict(
        env_prefix="HIVEWIRE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    nats_url: str | None = Field(
        default=None,
        description="Comma-separated server URLs. Unset: the embedded server on this machine.",
    )
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_creds_file: Path | None = Field(default=None, description="NATS .creds file (JWT+NKey).")
    nats_tls_ca_file: Path | None = None
    nats_tls_cert_file: Path | None = None
    nats_tls_key_file: Path | None = None
    nats_request_timeout: float = Field(default=10.0, gt=0, description="Default request deadline (s).")
    nats_jetstream_timeout: float = Field(
        default=5.0, gt=0, description="JetStream API calls, publishes and key-value reads (s)."
    )
    nats_connect_timeout: float = Field(default=2.0, gt=0, description="One connection attempt (s).")
    nats_initial_connect_timeout: float = Field(
        default=10.0, gt=0, description="All attempts of a process's first connection (s)."
    )
    nats_reconnect_wait: float = Field(default=1.0, gt=0, description="Pause between reconnect attempts (s).")
    nats_reconnect_max_wait: float = Field(
        default=10.0, gt=0, description="Longest pause between reconnect attempts (s)."
    )
    nats_max_reconnect_attempts: int = Field(default=-1, description="-1 retries forever.")
    nats_max_payload: int = Field(
        default=1024 * 1024,
        gt=0,
        le=64 * 1024 * 1024,
        description="Embedded server's max payload (bytes).",
    )
    nats_embedded_host: str = "127.0.0.1"
    nats_embedded_port: int = Field(default=4222, ge=0, le=65535, description="0 picks a free port.")
    data_dir: Path = Field(
        default=Path(".hivewire"),
        description="One folder for all local state: JetStream, Chroma, and what `hivewire up` records.",
    )
    nats_data_dir: Path = Field(
        default=Path(".hivewire/nats"), description="Embedded JetStream storage (default: <data dir>/nats)."
    )

    @field_validator("nats_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if not value else check_nats_url(value)

    @model_validator(mode="after")
    def _check_pairs(self) -> Self:
        if "nats_data_dir" not in self.model_fields_set:
            self.nats_data_dir = self.data_dir / "nats"
        if self.nats_reconnect_max_wait < self.nats_reconnect_wait:
            raise ValueError("HIVEWIRE_NATS_RECONNECT_MAX_WAIT must be >= HIVEWIRE_NATS_RECONNECT_WAIT")
        if (self.nats_user is None) != (self.nats_password is None):
            raise ValueError("HIVEWIRE_NATS_USER and HIVEWIRE_NATS_PASSWORD must be set together")
        if (self.nats_tls_cert_file is None) != (self.nats_tls_key_file is None):
            raise ValueError("HIVEWIRE_NATS_TLS_CERT_FILE and HIVEWIRE_NATS_TLS_KEY_FILE go together")
        return self

    def servers(self) -> list[str]:
        """The server URLs to connect to."""
        if not self.nats_url:
            return [DEFAULT_NATS_URL]
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def tls_context(self) -> ssl.SSLContext | None:
        """A client TLS context when any TLS file is configured."""
        if self.nats_tls_ca_file is None and self.nats_tls_cert_file is None:
            return None
        context = ssl.create_default_context(
            cafile=str(self.nats_tls_ca_file) if self.nats_tls_ca_file else None
        )
        if self.nats_tls_cert_file is not None and self.nats_tls_key_file is not None:
            context.load_cert_chain(str(self.nats_tls_cert_file), str(self.nats_tls_key_file))
        return context


class TelemetrySettings(BaseSettings):
    """Which telemetry a process exports: the standard OpenTelemetry variables, plus a ``/metrics`` port.

    Read from the environment only, never ``.env``: the OpenTelemetry SDK and its
    exporters read the other ``OTEL_*`` variables (endpoints, headers, timeouts,
    sampler, batch sizes) from the environment themselves, and both halves must
    see the same configuration. An empty variable counts as unset.
    """

    model_config = SettingsConfigDict(env_prefix="", env_ignore_empty=True, extra="ignore")

    otel_sdk_disabled: bool = Field(default=False, description="true: no telemetry at all.")
    otel_service_name: str | None = Field(default=None, description="Overrides the process's own name.")
    otel_traces_exporter: str = Field(
        default="none", description="Comma list of otlp, console, hivewire (the span store), none."
    )
    otel_metrics_exporter: str | None = Field(
        default=None, description="Comma list of otlp, console, prometheus, none. Unset: caller's default."
    )
    otel_exporter_otlp_protocol: str | None = Field(default=None, description="Only http/protobuf.")
    otel_exporter_otlp_traces_protocol: str | None = None
    otel_exporter_otlp_metrics_protocol: str | None = None
    hivewire_metrics_host: str = Field(default="127.0.0.1", description="Where the /metrics server listens.")
    hivewire_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve /metrics here (0: a free port). Unset: no server."
    )
    hivewire_span_store_max_age: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Seconds the span store keeps a span (set on creation).",
    )
    hivewire_span_store_max_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024 * 1024,
        description="Span store size; oldest go first.",
    )
    otel_bsp_schedule_delay: float | None = Field(
        default=None, ge=0, description="Milliseconds between span exports (the SDK reads it too)."
    )
