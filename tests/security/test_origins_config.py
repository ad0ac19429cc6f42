"""The operator's allowed origins: command line and UNICRM_ALLOW_ORIGINS, parsed strictly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from unicrm.outbound.policy import OriginError, OriginPolicy, operator_origins, parse_allowed


def test_origins_from_flag_and_environment() -> None:
    env = {"UNICRM_ALLOW_ORIGINS": " https://crm.example.com , https://*.example.org,"}
    assert operator_origins(["http://127.0.0.1:8080"], env) == (
        "http://127.0.0.1:8080",
        "https://crm.example.com",
        "https://*.example.org",
    )
    policy = OriginPolicy(operator_origins([], env))
    assert policy.explicitly_allowed("https://a.example.org/x")
    assert not policy.explicitly_allowed("https://a.b.example.org/x")
    assert not policy.explicitly_allowed("http://crm.example.com/")  # another scheme is another origin
    assert policy.explicitly_allowed("https://crm.example.com:443/api")


@pytest.mark.parametrize(
    "bad", ["ftp://x.com", "https://x.com/path", "https://", "https://user:pw@x.com", "https://x.com?q", "x.com", "https://[::1"]
)
def test_malformed_origins_are_refused(bad: str) -> None:
    with pytest.raises(OriginError):
        parse_allowed(bad)


def test_serve_refuses_a_malformed_origin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "unicrm.cli", "serve", "--allow-origin", "ftp://nope", "--port", "1"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"http:// or https://" in proc.stderr
