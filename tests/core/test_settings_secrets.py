"""Settings errors name the field, never the value: no key reaches a log through them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from core.settings import ApiSettings, ModelHubSettings
from services.api.metrics import metric_method, metrics_allowed

GOOD = "goodkey-0123456789abcdef"
OTHER = "otherkey-0123456789abcd"
METRICS = "metrics-key-0123456789ab"


@pytest.mark.parametrize(
    "keys",
    [
        f'{{"a": "{GOOD}", "b": "sh0rtk3y"}}',
        f'{{"a": "{GOOD}", "b!": "{OTHER}"}}',
        f'{{"a": "{GOOD}", "b": "{GOOD}"}}',
        f'{{"a": "{GOOD}", "b": "changeme"}}',
    ],
)
def test_an_invalid_api_key_map_prints_no_key(monkeypatch: pytest.MonkeyPatch, keys: str) -> None:
    monkeypatch.setenv("SIEVE_API_KEYS", keys)
    with pytest.raises(ValidationError) as refused:
        ApiSettings()
    text = str(refused.value)
    assert "SIEVE_API_KEYS" in text
    for secret in (GOOD, OTHER, "sh0rtk3y", "changeme"):
        assert secret not in text


def test_an_invalid_hub_key_list_prints_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEVE_MODELHUB_API_KEYS", f"{GOOD},tooshort")
    with pytest.raises(ValidationError) as refused:
        ModelHubSettings()
    assert "SIEVE_MODELHUB_API_KEYS" in str(refused.value)
    assert GOOD not in str(refused.value)
    assert "tooshort" not in str(refused.value)


def test_metrics_need_their_own_key_once_tenants_have_keys() -> None:
    assert metrics_allowed(ApiSettings(), None) is None  # open mode, loopback only
    keyed = ApiSettings(keys={"a": SecretStr(GOOD)})
    assert metrics_allowed(keyed, f"Bearer {GOOD}") is not None
    both = ApiSettings(keys={"a": SecretStr(GOOD)}, metrics_key=SecretStr(METRICS))
    assert metrics_allowed(both, f"Bearer {METRICS}") is None
    for bad in (None, f"Bearer {GOOD}", f"Basic {METRICS}", f"Bearer {METRICS}x"):
        assert metrics_allowed(both, bad) is not None
    with pytest.raises(ValidationError, match="differ"):
        ApiSettings(keys={"a": SecretStr(GOOD)}, metrics_key=SecretStr(GOOD))


def test_metric_methods_fold_into_a_closed_set() -> None:
    assert [metric_method(m) for m in ("GET", "POST", "BREW", "get", "X" * 500)] == [
        "GET",
        "POST",
        "other",
        "other",
        "other",
    ]
