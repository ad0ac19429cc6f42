"""The command line: `unicrm demo --json`, `unicrm token create`, `unicrm emulate --json`, `unicrm coverage --check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.harness import free_port

UNICRM = [sys.executable, "-m", "unicrm.cli"]


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def test_demo_json_serves_every_integration(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "UNICRM_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [*UNICRM, "demo", "--json", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) == {"base_url", "api_token", "integrated_accounts", "connect_url"}
        # The connect link works out of the box: every integration is offered, OAuth ones included.
        with urllib.request.urlopen(info["connect_url"], timeout=10) as resp:
            page = resp.read().decode()
        assert "Teamleader Focus" in page and "Capsule CRM" in page and "Insightly" in page
        from unicrm.emulators import EMULATORS

        assert set(info["integrated_accounts"]) == set(EMULATORS)
        for account in info["integrated_accounts"].values():
            page = _get(f"{info['base_url']}/unified/crm/projects?integrated_account_id={account}&limit=3", info["api_token"])
            assert page["result"] and len(page["result"]) <= 3
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_token_create_prints_only_the_token(tmp_path: Path) -> None:
    out = subprocess.run(
        [*UNICRM, "token", "create", "--data-dir", str(tmp_path), "--environment", "staging"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "UNICRM_DATA_DIR": str(tmp_path)},
    )
    assert out.stdout.strip().startswith("ucrm_") and len(out.stdout.strip().splitlines()) == 1


def test_emulate_json(tmp_path: Path) -> None:
    proc = subprocess.Popen([*UNICRM, "emulate", "capsule", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"capsule"}
        assert info["capsule"]["context"]["base_url"] == info["capsule"]["base_url"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_coverage_table_is_up_to_date() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [*UNICRM, "coverage", "--check", "--output", str(root / "docs" / "coverage.md")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_demo_quickstart_lines_work_when_pasted(tmp_path: Path) -> None:
    """Every curl line the demo prints runs in bash and gets a 2xx answer (`curl -f` fails on >= 400)."""
    from unicrm.emulators import EMULATORS

    port = free_port()
    env = {**os.environ, "UNICRM_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([*UNICRM, "demo", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any('"$UNICRM/webhook"' in line for line in lines):
            line = proc.stdout.readline().decode()
            assert line, "the demo stopped before printing its quickstart"
            lines.append(line.rstrip("\n"))
        commands = [line for line in lines if line.startswith(("export ", "curl ", "ID="))]
        assert sum(line.startswith("curl ") for line in commands) >= 2 * len(EMULATORS)
        # `echo` after each line: curl prints no newline after a JSON body
        script = "set -e\n" + "\n".join(
            line.replace("curl -s ", "curl -sS -f ", 1).replace("$(curl -s ", "$(curl -sS -f ", 1) + "\necho" for line in commands
        )
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr + result.stdout[-2000:]
        # then the creates, each printing a unified record with an id; last a link and a webhook
        outputs = result.stdout.strip().splitlines()
        created = [json.loads(out) for out in outputs[-len(EMULATORS) - 2 : -2]]
        assert all(record.get("id") for record in created), created
        link, hook = json.loads(outputs[-2]), json.loads(outputs[-1])
        assert link["url"].startswith(f"http://127.0.0.1:{port}/connect?link_token=") and hook["secret"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UNICRM_DATA_DIR": str(tmp_path)}
    env.pop("UNICRM_DATABASE_URL", None)
    return subprocess.run([*UNICRM, *args], capture_output=True, text=True, env=env, timeout=60)


def test_a_bad_choice_names_the_choices(tmp_path: Path) -> None:
    result = _run("serve", "--log-level", "verbose", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'verbose'" in result.stderr
    for level in ("debug", "info", "warning", "error", "critical"):
        assert level in result.stderr
    assert "Traceback" not in result.stderr
    result = _run("serve", "--log-format", "xml", tmp_path=tmp_path)
    assert result.returncode == 2 and "json" in result.stderr and "text" in result.stderr
    result = _run("serve", "--port", "99999", tmp_path=tmp_path)
    assert result.returncode == 2 and "port number from 0 to 65535" in result.stderr


def test_database_problems_are_one_line_that_says_what_to_fix(tmp_path: Path) -> None:
    cases = {
        "mysql://app:s3cret-pass@127.0.0.1/unicrm": "does not support mysql://",
        "postgresql://app:s3cret-pass@127.0.0.1:1/unicrm": "cannot reach the database at 127.0.0.1:1",
        "postgresql://127.0.0.1:5432/unicrm_no_such_database": "the database 'unicrm_no_such_database' does not exist",
        f"sqlite:///{tmp_path}/missing/dir/unicrm.db": "directory must exist and be writable",
    }
    for url, expected in cases.items():
        for command in (["serve", "--port", "0"], ["token", "create"]):
            result = _run(*command, "--database-url", url, tmp_path=tmp_path)
            assert result.returncode == 2, (url, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("unicrm: error: "), result.stderr
            assert expected in lines[0], lines[0]
            assert "s3cret-pass" not in result.stderr
            assert "--database-url" in lines[0]


def test_every_flag_has_help() -> None:
    import argparse

    from unicrm.cli import build_parser

    def walk(parser: argparse.ArgumentParser, where: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(), "unicrm") == []


def test_serve_text_log_format_writes_one_line_per_request(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "UNICRM_DATA_DIR": str(tmp_path)}
    env.pop("UNICRM_DATABASE_URL", None)
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([*UNICRM, "serve", "--port", str(port), "--log-format", "text"], stderr=log.open("wb"), env=env)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    request_id = resp.headers["x-request-id"]
                break
            except OSError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    lines = [line for line in log.read_text().splitlines() if "unicrm.request" in line]
    assert len(lines) == 1 and f"request_id={request_id}" in lines[0] and "GET /health 200" in lines[0], log.read_text()


def _cli(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UNICRM, *args, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "UNICRM_DATA_DIR": str(tmp_path)},
    )


def test_connect_commands(tmp_path: Path) -> None:
    out = _cli(tmp_path, "oauth-app", "set", "capsule", "--client-id", "my-client", "--client-secret", "s3cr3t-value")
    assert "stored encrypted" in out.stdout and "s3cr3t-value" not in out.stdout
    listed = _cli(tmp_path, "oauth-app", "list").stdout
    assert "capsule\tclient_id=my-client\tsecret=set" in listed and "s3cr3t-value" not in listed
    assert b"s3cr3t-value" not in (tmp_path / "unicrm.db").read_bytes()  # encrypted at rest
    refused = _cli(tmp_path, "oauth-app", "set", "insightly", "--client-id", "a", "--client-secret", "b", check=False)
    assert refused.returncode == 2 and "no OAuth" in refused.stderr
    assert _cli(tmp_path, "connect-defaults", "set", "insightly", "pod=eu1").returncode == 0
    bad = _cli(tmp_path, "connect-defaults", "set", "insightly", "colour=red", check=False)
    assert bad.returncode == 2
    link = _cli(tmp_path, "link-token", "create", "--tenant-id", "acme", "--integration", "insightly").stdout.strip()
    assert link.startswith("http://127.0.0.1:8000/connect?link_token=lt_")
    hook = json.loads(_cli(tmp_path, "webhook", "create", "https://example.com/hook").stdout)
    assert len(hook["secret"]) == 64 and "integrated_account:created" in hook["event_types"]
    listed = _cli(tmp_path, "webhook", "list").stdout
    assert hook["id"] in listed and hook["secret"] not in listed
