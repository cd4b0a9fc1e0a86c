"""sanitize_url masks credentials and leaves everything else exactly as it was."""

from __future__ import annotations

import pytest

from connectors.redact import sanitize_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/wh", "postgresql://app:***@db:5432/wh"),
        ("https://api.example.com/v1/items?api_key=abc&page=2", "https://api.example.com/v1/items?api_key=***&page=2"),
        ("https://u:p@host/x?token=t", "https://u:***@host/x?token=***"),
        ("https://api.example.com/v1?q=1", "https://api.example.com/v1?q=1"),
        # Regression: rebuilding the URL used to drop a slash, turning an absolute SQLite path relative.
        ("sqlite:////var/lib/agg/warehouse.db", "sqlite:////var/lib/agg/warehouse.db"),
        ("sqlite:///warehouse.db", "sqlite:///warehouse.db"),
    ],
)
def test_sanitize_url(url: str, expected: str) -> None:
    assert sanitize_url(url) == expected


def test_custom_secret_params_are_masked() -> None:
    assert sanitize_url("https://h/p?x-sig=1", secret_params=["X-Sig"]) == "https://h/p?x-sig=***"
