"""Settings, one class per concern, each with its own ``SIEVE_*`` env prefix.

Only ``services/*`` build these (in their composition roots) and pass the values in;
library code never reads the environment. Every class refuses to start on a bad or
placeholder value.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "LogSettings",
    "ModelSettings",
    "RedisSettings",
    "StoreBackend",
    "StoreSettings",
    "reject_placeholder",
]

_PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "token", "your-token", "xxx", "todo"}
)


def reject_placeholder(value: SecretStr | None, what: str) -> SecretStr | None:
    """Refuse an obviously unset secret such as ``changeme`` or ``<token>``."""
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if raw.lower() in _PLACEHOLDERS or (raw.startswith("<") and raw.endswith(">")):
        raise ValueError(f"{what} is a placeholder ({raw[:12]!r}); set a real value or unset it")
    return value


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True)


class LogSettings(BaseSettings):
    """``SIEVE_LOG_*``: structured logging."""

    model_config = _config("SIEVE_LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="SIEVE_LOG_JSON")


class StoreBackend(StrEnum):
    """Which Qdrant engine holds the chunks."""

    EDGE = "edge"
    SERVER = "server"


class StoreSettings(BaseSettings):
    """``SIEVE_QDRANT_*``: the chunk store (Qdrant Edge embedded, or a Qdrant server)."""

    model_config = _config("SIEVE_QDRANT_")

    backend: StoreBackend = StoreBackend.EDGE
    path: Path = Path("data/qdrant")
    url: AnyHttpUrl | None = None
    api_key: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    search_threads: Annotated[int | None, Field(gt=0, le=64)] = None

    @field_validator("api_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return reject_placeholder(value, "SIEVE_QDRANT_API_KEY")

    @model_validator(mode="after")
    def _server_needs_url(self) -> StoreSettings:
        if self.backend is StoreBackend.SERVER and self.url is None:
            raise ValueError("SIEVE_QDRANT_BACKEND=server needs SIEVE_QDRANT_URL")
        return self


class RedisSettings(BaseSettings):
    """``SIEVE_REDIS_*``: broker and job state."""

    model_config = _config("SIEVE_REDIS_")

    url: str = "redis://127.0.0.1:6379/0"
    socket_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("SIEVE_REDIS_URL must start with redis://, rediss:// or unix://")
        return value


class ModelSettings(BaseSettings):
    """``SIEVE_MODEL_*``: the model hub Sieve calls (local hub, IONOS, or any compatible one)."""

    model_config = _config("SIEVE_MODEL_")

    base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8100/v1")
    api_key: SecretStr | None = None
    embedding_model: str = "BAAI/bge-small-en-v1.5"
    rerank_model: str = "cross-encoder/ms-marco-MiniLM-L-12-v2"
    query_prefix: str = "Represent this sentence for searching relevant passages: "
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 4
    requests_per_second: Annotated[float, Field(gt=0, le=1000)] = 5.0

    @field_validator("api_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return reject_placeholder(value, "SIEVE_MODEL_API_KEY")

    @model_validator(mode="after")
    def _remote_needs_key(self) -> ModelSettings:
        host = self.base_url.host or ""
        if host.endswith("ionos.com") and self.api_key is None:
            raise ValueError("the IONOS model hub needs SIEVE_MODEL_API_KEY (a bearer token)")
        return self
