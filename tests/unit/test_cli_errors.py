"""No traceback for any operator mistake: every command, a table of bad inputs, one line each.

Each case runs the real entry point (``cli.main``) in this process and checks stderr
is exactly one line naming the problem, stdout is empty, and the exit status is the
documented one (2 for a usage or configuration error). None of these cases reaches a node:
every one is refused before any connection is made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from cli import cli, main

GOOD_URL = ["--es-url", "http://127.0.0.1:9"]

# (command line, extra environment, substring of the one line); every case exits 2.
CASES: list[tuple[list[str], dict[str, str], str]] = [
    # URLs
    (["run", "--path", "/x", "--es-url", "http://127.0.0.1:99999"], {}, "Port out of range"),
    (["run", "--path", "/x", "--es-url", "http://127.0.0.1:notaport"], {}, "could not be cast"),
    (["run", "--path", "/x", "--es-url", "http://[::1"], {}, "Invalid IPv6 URL"),
    (["search", "--es-url", "http://[::1"], {}, "Invalid IPv6 URL"),
    (["setup", "--es-url", "http://127.0.0.1:99999"], {}, "Port out of range"),
    (["show", "abc", "--es-url", "localhost:9200"], {}, "not an http:// or https:// URL"),
    (["setup", "--kibana-url", "kibana"], {}, "invalid setting kibana_url (--kibana-url"),
    (["setup"], {"APPMIXER_AUDIT_ES_URL": "http://h:70000"}, "(APPMIXER_AUDIT_ES_URL="),
    # times
    (["search", *GOOD_URL, "--since", "99999999d"], {}, "reaches back before the year 1"),
    (["search", *GOOD_URL, "--since", "99999999999999999999w"], {}, "before the year 1"),
    (["search", *GOOD_URL, "--until", "yesterday"], {}, "is neither ISO 8601"),
    (["search", *GOOD_URL, "--since", "2026-13-45"], {}, "is neither ISO 8601"),
    (["setup", *GOOD_URL, "--retention", "forever"], {}, "retention 'forever'"),
    # ids, sizes, cursors, choices
    (["show", "", *GOOD_URL], {}, "an event id cannot be empty"),
    (["show", "   ", *GOOD_URL], {}, "an event id cannot be empty"),
    (["search", *GOOD_URL, "--size", "0"], {}, "'--size'"),
    (["search", *GOOD_URL, "--size", "many"], {}, "'--size'"),
    (["search", *GOOD_URL, "--after", "not-a-cursor"], {}, "'--after'"),
    (["search", *GOOD_URL, "--type", "explode"], {}, "'--type'"),
    (["show", "x", *GOOD_URL, "--format", "xml"], {}, "'--format'"),
    (["simulate", "--events", "-1"], {}, "'--events'"),
    (["simulate", "--events", "5", "--rate", "0"], {}, "'--rate'"),
    (["simulate", "--events", "5", "--seed", "x"], {}, "'--seed'"),
    # ports and addresses
    (["dev-es", "start", "--port", "99999"], {}, "'--port'"),
    (["dev-es", "status", "--port", "notaport"], {}, "'--port'"),
    (["dev-es", "stop", "--transport-port", "0"], {}, "'--transport-port'"),
    (["dev-es", "stop", "--name", "../etc"], {}, "'--name'"),
    (["dev-es", "start", "--heap", "lots"], {}, "'--heap'"),
    (["run", "--path", "/x", "--metrics-address", "9464"], {}, "must be HOST:PORT"),
    (["run", "--path", "/x", "--metrics-address", "h:99999"], {}, "must be HOST:PORT"),
    # paths
    (["run"], {}, "give at least one --path"),
    (["run", "--path", "", *GOOD_URL], {}, "an empty path pattern matches nothing"),
    (["run", "--path", "/x", "--state-dir", "/etc/hostname"], {}, "'--state-dir'"),
    (["run", "--path", "/x", "--config", "/nonexistent.toml"], {}, "does not exist"),
    (["run", "--path", "/x", "--config", "/"], {}, "is a directory"),
    (["setup", "--es-ca-certs", "/nonexistent.pem"], {}, "'--es-ca-certs'"),
    (["normalize", "/nonexistent.ndjson"], {}, "Could not open file"),
    (["normalize", "/"], {}, "Could not open file"),
    (["simulate", "--events", "1", "--out", "/nonexistent/dir/f"], {}, "Could not open file"),
    (["setup"], {"APPMIXER_AUDIT_CONFIG": "/dev/null/x"}, "config file /dev/null/x"),
    (["setup"], {"APPMIXER_AUDIT_CONFIG": "/dev/zero"}, "is not a regular file"),
    # regexes
    (["normalize", "--redact-key", "a("], {}, "is not a valid regular expression"),
    (["normalize", "--redact-value", "[z-a]"], {}, "is not a valid regular expression"),
    (["run", "--path", "/x"], {"APPMIXER_AUDIT_REDACT_KEYS": "(?P<"}, "not a valid regular"),
    # numbers and names
    (["setup"], {"APPMIXER_AUDIT_ES_REQUEST_TIMEOUT": "inf"}, "must be a finite number"),
    (["run", "--path", "/x"], {"APPMIXER_AUDIT_BATCH_MAX_WAIT": "1e12"}, "BATCH_MAX_WAIT"),
    (["search"], {"APPMIXER_AUDIT_NAMESPACE": "Bad Name"}, "invalid setting namespace"),
    (["search"], {"APPMIXER_AUDIT_NAMESPAC": "x"}, "APPMIXER_AUDIT_NAMESPAC is not a known"),
    (["show", "x", "--log-level", "loud"], {}, "'--log-level'"),
    # verify, and setup's own options
    (["verify", *GOOD_URL, "--since", "99999999d"], {}, "reaches back before the year 1"),
    (["verify", *GOOD_URL, "--since", "someday"], {}, "is neither ISO 8601"),
    (["verify", "--es-url", "http://[::1"], {}, "Invalid IPv6 URL"),
    (["setup", *GOOD_URL, "--create-api-key", "admin"], {}, "'--create-api-key'"),
    (["setup", "--kibana-url", "http://127.0.0.1:99999"], {}, "Port out of range"),
    (["setup", "--kibana-space", "Bad Space"], {}, "invalid setting kibana_space"),
    # the command line itself
    (["nosuch"], {}, "No such command 'nosuch'"),
    (["run", "--bogus"], {}, "No such option '--bogus'"),
    (["show"], {}, "Missing argument 'EVENT_ID'"),
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stray variables in; and the logging set up by a command (bound to this test's
    captured stderr) does not outlive the test."""
    for name in list(os.environ):
        if name.startswith("APPMIXER_AUDIT_"):
            monkeypatch.delenv(name)
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class TestBadInputs:
    @pytest.mark.parametrize(
        ("argv", "env", "expected"), CASES, ids=[" ".join(c[0])[:60] for c in CASES]
    )
    def test_one_line_and_exit_2(
        self,
        argv: list[str],
        env: dict[str, str],
        expected: str,
        *,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        """The mistake is refused with exit 2 and one stderr line saying what is wrong."""
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as exited:
            main(argv)
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert exited.value.code == 2, err
        assert len(lines) == 1, err
        assert lines[0].startswith("appmixer-audit: ")
        assert expected in lines[0]
        assert out == ""


class TestRealProcess:
    def test_console_script_shows_no_traceback(self) -> None:
        """Through the real interpreter too: one line, exit 2, no 'Traceback'."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPMIXER_AUDIT_")}
        result = subprocess.run(
            [sys.executable, "-m", "agent", "search", "--since", "99999999d"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_help_still_exits_0(self) -> None:
        """--help is not an error."""
        result = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0
        assert "--path" in result.stdout


class TestDevEsStatusRace:
    def test_a_node_gone_between_health_and_features_is_not_healthy(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Healthy at the first look, nothing listening at the second (a node stopping):
        'running, not healthy', exit 1, no traceback."""
        from devtools.devnode import DevNode, NodeStatus

        def healthy_then_gone(node: DevNode) -> NodeStatus:
            return NodeStatus(node.name, node.url, True, 4242, True)

        monkeypatch.setattr(DevNode, "status", healthy_then_gone)
        monkeypatch.setattr(DevNode, "credentials", lambda _node: None)
        with pytest.raises(SystemExit) as exit_info:
            main(["dev-es", "status", "--name", "gone", "--port", "9", "--transport-port", "19"])
        assert exit_info.value.code == 1
        out, err = capsys.readouterr()
        assert out.strip() == "running, not healthy"
        assert "Traceback" not in err


def test_dev_es_status_by_name_reports_the_nodes_own_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dev-es status --name N`` looks at node N's own port (as its last start recorded
    it), not the default 9200."""
    home = tmp_path / "nodes" / "other"
    home.mkdir(parents=True)
    (home / "node.json").write_text(
        '{"version": "8.19.8", "data_of": "elasticsearch-8.19.8", "http_port": 9467, '
        '"transport_port": 9567}\n'
    )
    monkeypatch.setenv("APPMIXER_AUDIT_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["dev-es", "status", "--name", "other"])
    assert result.exit_code == 1, result.output
    assert "not running: http://127.0.0.1:9467" in result.output
    argv = ["dev-es", "status", "--name", "other", "--port", "9468"]
    given = CliRunner().invoke(cli, argv)
    assert "not running: http://127.0.0.1:9468" in given.output
