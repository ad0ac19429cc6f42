"""Server settings read from options and the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from unicrm.store.settings import DEFAULT_STREAM_MAX_WAIT_S, STREAM_MAX_WAIT_ENV, stream_max_wait_s


def test_stream_max_wait_explicit_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STREAM_MAX_WAIT_ENV, raising=False)
    assert stream_max_wait_s() == DEFAULT_STREAM_MAX_WAIT_S == 60.0
    monkeypatch.setenv(STREAM_MAX_WAIT_ENV, "12.5")
    assert stream_max_wait_s() == 12.5
    assert stream_max_wait_s(3) == 3.0
    assert stream_max_wait_s(0) == 0.0


@pytest.mark.parametrize("bad", ["soon", "-1", "nan"])
def test_stream_max_wait_refuses_what_is_not_seconds(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(STREAM_MAX_WAIT_ENV, bad)
    with pytest.raises(ValueError, match=STREAM_MAX_WAIT_ENV):
        stream_max_wait_s()


def test_serve_refuses_a_bad_stream_max_wait_clearly() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unicrm.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"UNICRM_STREAM_MAX_WAIT_S": "soon", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert "UNICRM_STREAM_MAX_WAIT_S must be a number of seconds" in out.stderr
    assert "Traceback" not in out.stderr
