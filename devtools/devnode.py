"""A local Elasticsearch node for trying the agent out and for the test suite.

Machines without a Docker engine still get a real node: the integ-test distribution of
Elasticsearch is fetched from Maven Central with ``mvn dependency:copy``, cached outside the
repository, unpacked once and started on a JDK found on the machine. Elasticsearch refuses
to run as root, so when we are root the node runs as ``nobody`` from a world-readable cache.

Each node has a name and a directory of its own (config, data, logs, pid), so several can
run side by side, form a cluster, be paused or stopped by tests, and ``stop`` only ever
touches a process this module started. ``security=True`` makes a node with HTTPS, a
superuser and API keys (``devtools.secure``); its credentials sit in ``credentials/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from base64 import b64encode
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.log import get_logger
from devtools import secure

# The one place the default version is pinned: the newest 9.x integ-test zip served on Maven
# Central that starts here (the client library is pinned to 9.x to match). Other versions
# (``dev-es start --version``): any Elasticsearch integ-test zip on Maven Central, and
# OpenSearch's as ``opensearch-<version>`` (for checking that the agent refuses it).
ES_VERSION = "9.5.4"
MIN_JAVA = 21
RUN_AS_WHEN_ROOT = "nobody"

log = get_logger(__name__)


def processes_with(part: str, value: bytes) -> list[int]:
    """Live processes one of whose NUL-separated ``/proc/<pid>/<part>`` entries (``cmdline``
    arguments, ``environ`` variables) is exactly ``value``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            entries = (entry / part).read_bytes().split(b"\0")
        except OSError:
            continue
        if value in entries:
            found.append(int(entry.name))
    return found


def _tail(path: Path, lines: int, width: int | None = None) -> str | None:
    """The last ``lines`` lines of a text file joined by `` | `` (each cut to ``width``);
    None when it cannot be read."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return None
    return " | ".join(line[:width] for line in text[-lines:])


class DevNodeError(Exception):
    """Provisioning or starting the node failed; the message says what to do about it."""


@dataclass(frozen=True)
class Flavor:
    """Which server a node runs: product and version, and what follows from them.

    Elasticsearch 8.x and older has no bundled JDK in its integ-test zip and reads
    ``ES_JAVA_HOME``; before 8.18 it needs the Java security manager, which Java 24 removed,
    so those versions run on a JDK from 17 to 23. OpenSearch reads ``OPENSEARCH_*``.
    """

    product: str  # "elasticsearch" or "opensearch"
    version: str

    @classmethod
    def parse(cls, text: str) -> Flavor:
        """``9.5.4``, ``8.19.8``, ``opensearch-2.19.6``."""
        product, _, version = (
            text.rpartition("-") if text.startswith("opensearch-") else ("", "", text)
        )
        product = product or "elasticsearch"
        parts = version.split(".")
        if len(parts) != 3 or not all(part.isdigit() for part in parts):
            raise DevNodeError(f"version {text!r} is not like 9.5.4, 8.19.8 or opensearch-2.19.6")
        return cls(product, version)

    @property
    def release(self) -> tuple[int, int, int]:
        major, minor, patch = (int(part) for part in self.version.split("."))
        return major, minor, patch

    @property
    def name(self) -> str:
        return f"{self.product}-{self.version}"

    @property
    def spec(self) -> str:
        """What :meth:`parse` reads back: the bare version for Elasticsearch."""
        return self.version if self.product == "elasticsearch" else self.name

    @property
    def label(self) -> str:
        return f"{'OpenSearch' if self.product == 'opensearch' else 'Elasticsearch'} {self.version}"

    @property
    def artifact(self) -> str:
        group = "org.opensearch" if self.product == "opensearch" else "org.elasticsearch"
        return f"{group}.distribution.integ-test-zip:{self.product}:{self.version}:zip"

    @property
    def env_prefix(self) -> str:
        return "OPENSEARCH" if self.product == "opensearch" else "ES"

    @property
    def java_range(self) -> tuple[int, int | None]:
        """The Java majors this version starts on (inclusive; None: no upper bound)."""
        major = self.release[0]
        if self.product == "opensearch":
            return (21, 24) if major >= 3 else (11, 23)
        if major >= 9:
            return MIN_JAVA, None
        if self.release >= (8, 18, 0):
            return 17, None
        return (17, 23) if major == 8 else (11, 23)


DEFAULT_FLAVOR = Flavor("elasticsearch", ES_VERSION)


def cache_dir() -> Path:
    """Where downloads, unpacked distributions and node directories live (never the repo).

    Root's home is private, but the node runs as an unprivileged user who must read the
    distribution: root therefore caches under /var/cache.
    """
    explicit = os.environ.get("APPMIXER_AUDIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/cache/appmixer-audit")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "appmixer-audit"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise provisioning between processes (parallel test sessions, two shells)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- Java


def _java_major(home: Path) -> int | None:
    release = home / "release"
    if not release.is_file() or not (home / "bin" / "java").is_file():
        return None
    for line in release.read_text(errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            head = version.split(".")[0]
            if head == "1":  # 1.8 style
                head = version.split(".")[1]
            return int(head) if head.isdigit() else None
    return None


def find_java(flavor: Flavor = DEFAULT_FLAVOR) -> Path:
    """The newest JDK this version runs on: ES_JAVA_HOME, JAVA_HOME or the system's JVM dir."""
    minimum, maximum = flavor.java_range
    candidates: list[Path] = []
    for variable in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]))
    jvm_dir = Path("/usr/lib/jvm")
    if jvm_dir.is_dir():
        candidates.extend(sorted(p for p in jvm_dir.iterdir() if p.is_dir()))
    found = [(major, home) for home in candidates if (major := _java_major(home)) is not None]
    usable = [
        (major, home)
        for major, home in found
        if major >= minimum and (maximum is None or major <= maximum)
    ]
    if not usable:
        seen = ", ".join(f"{home} (Java {major})" for major, home in found) or "none"
        wanted = f"Java {minimum} or newer" if maximum is None else f"Java {minimum} to {maximum}"
        raise DevNodeError(
            f"{flavor.label} needs {wanted}; found: {seen}. "
            f"Install such a JDK (Temurin or OpenJDK packages) or set ES_JAVA_HOME."
        )
    usable.sort(key=lambda pair: pair[0], reverse=True)
    return usable[0][1]


# --------------------------------------------------------------------------- distribution


def _fetch_zip(flavor: Flavor, downloads: Path) -> Path:
    target = downloads / f"{flavor.name}.zip"
    if target.is_file():
        return target
    if shutil.which("mvn") is None:
        raise DevNodeError(
            "no cached Elasticsearch distribution and no `mvn` to fetch one: install Maven, "
            "or pass --distribution PATH (an elasticsearch integ-test zip or unpacked directory)"
        )
    downloads.mkdir(parents=True, exist_ok=True)
    log.info("distribution_download", version=flavor.version, artifact=flavor.artifact)
    command = [
        "mvn",
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={flavor.artifact}",
        f"-DoutputDirectory={downloads}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not target.is_file():
        detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise DevNodeError(f"could not fetch {flavor.label} with Maven: " + " | ".join(detail))
    return target


def _unpack(archive: Path, dist_root: Path, name: str, launcher: str) -> Path:
    home = dist_root / name
    if (home / "bin" / launcher).is_file():
        return home
    staging = dist_root / f".unpack-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(staging)
    unpacked = next(staging.iterdir())
    for path in (unpacked / "bin").iterdir():
        path.chmod(0o755)
    shutil.rmtree(home, ignore_errors=True)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    _make_readable(home)
    return home


def _make_readable(root: Path) -> None:
    """The node may run as another user: everything in the distribution must be readable."""
    for directory, _dirs, files in os.walk(root):
        Path(directory).chmod(0o755)
        for name in files:
            path = Path(directory) / name
            path.chmod(path.stat().st_mode | 0o444)


def ensure_distribution(flavor: Flavor = DEFAULT_FLAVOR, explicit: Path | None = None) -> Path:
    """An unpacked distribution home: explicit path, else cached copy, else Maven Central."""
    root = cache_dir()
    explicit = explicit or (
        Path(os.environ["APPMIXER_AUDIT_ES_DISTRIBUTION"])
        if os.environ.get("APPMIXER_AUDIT_ES_DISTRIBUTION")
        else None
    )
    with _locked(root / "dist.lock"):
        launcher = flavor.product
        if explicit is not None:
            if (explicit / "bin" / launcher).is_file():
                return explicit
            if explicit.is_file() and explicit.suffix == ".zip":
                return _unpack(explicit, root / "dist", f"{flavor.name}-local", launcher)
            raise DevNodeError(f"{explicit} is neither an {launcher} zip nor its unpacked home")
        archive = _fetch_zip(flavor, root / "downloads")
        return _unpack(archive, root / "dist", flavor.name, launcher)


# --------------------------------------------------------------------------- nodes


@dataclass
class NodeStatus:
    name: str
    url: str
    running: bool
    pid: int | None
    healthy: bool
    security: bool = False
    ca_certs: str | None = None
    username: str | None = None
    password_file: str | None = None


class DevNode:
    """One named local node; several may run together and form a cluster."""

    def __init__(
        self,
        name: str = "default",
        http_port: int | None = None,
        transport_port: int | None = None,
        *,
        cluster_name: str | None = None,
        seed_hosts: Sequence[str] = (),
        initial_master_nodes: Sequence[str] = (),
        heap: str = "1g",
        version: str | None = None,
        distribution: Path | None = None,
        root: Path | None = None,
        security: bool | None = None,
    ) -> None:
        """``None`` for ports, version or security (stop, status) means: as this node was last
        started, else 9200, 9300, the default version and no security."""
        if not name.replace("-", "").replace("_", "").isalnum():
            raise DevNodeError(f"node name {name!r} must be letters, digits, - or _")
        self.name = name
        self.home = (root or cache_dir() / "nodes") / name
        last = self._last_started()
        self.http_port = http_port or int(last.get("http_port", 9200))
        self.transport_port = transport_port or int(last.get("transport_port", 9300))
        self.flavor = Flavor.parse(version or str(last.get("version", ES_VERSION)))
        self.cluster_name = cluster_name or f"appmixer-audit-dev-{name}"
        self.seed_hosts = list(seed_hosts)
        self.initial_master_nodes = list(initial_master_nodes)
        self.heap = heap
        self.distribution = distribution
        self.security = self.credentials_dir.is_dir() if security is None else security
        scheme = "https" if self.security else "http"
        self.url = f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def version(self) -> str:
        return self.flavor.version

    # ----------------------------------------------------------------- paths and identity

    @property
    def _started_file(self) -> Path:
        return self.home / "node.json"

    def _last_started(self) -> dict[str, Any]:
        """What the last start recorded: ports and version (``{}`` for a new node)."""
        try:
            recorded = json.loads(self._started_file.read_text())
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def _record_start(self) -> None:
        last = self._last_started()
        if last.get("data_of") not in (None, self.flavor.name):
            raise DevNodeError(
                f"node {self.name} holds the data of {last['data_of']}, which "
                f"{self.flavor.label} cannot open: start it with --version "
                f"{str(last['data_of']).removeprefix('elasticsearch-')}, or choose another "
                "--name (or `dev-es stop` it and delete its directory)"
            )
        record = {
            "version": self.flavor.spec,
            "data_of": self.flavor.name,
            "http_port": self.http_port,
            "transport_port": self.transport_port,
        }
        self._started_file.write_text(json.dumps(record) + "\n")

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def credentials_dir(self) -> Path:
        """The client's copies of the CA and the superuser password (0600 files)."""
        return self.home / "credentials"

    def credentials(self) -> secure.Credentials | None:
        if not self.security:
            return None
        return secure.Credentials(
            self.credentials_dir / "ca.crt",
            secure.SUPERUSER,
            self.credentials_dir / f"{secure.SUPERUSER}.password",
        )

    @property
    def pid_file(self) -> Path:
        return self.home / "node.pid"

    @property
    def console_log(self) -> Path:
        return self.home / "logs" / "console.log"

    def pid(self) -> int | None:
        """Our node's pid, if the recorded process is alive and really is this node."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return None
        markers = {f"{p}_PATH_CONF={self.config_dir}".encode() for p in ("ES", "OPENSEARCH")}
        return pid if markers & set(environ.split(b"\0")) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def _http_status(self, path: str = "/_cluster/health", timeout: float = 2.0) -> int | None:
        request = urllib.request.Request(self.url + path)  # noqa: S310 (our own node's URL)
        context: ssl.SSLContext | None = None
        credentials = self.credentials()
        try:
            if credentials is not None:
                context = ssl.create_default_context(cafile=str(credentials.ca_certs))
                token = f"{credentials.username}:{credentials.password()}".encode()
                request.add_header("Authorization", "Basic " + b64encode(token).decode())
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError):
            return None

    def is_healthy(self) -> bool:
        return self._http_status() == 200

    def status(self) -> NodeStatus:
        running = self.is_running()
        healthy = running and self.is_healthy()
        credentials = self.credentials()
        if credentials is None:
            return NodeStatus(self.name, self.url, running, self.pid(), healthy)
        return NodeStatus(
            self.name,
            self.url,
            running,
            self.pid(),
            healthy,
            security=True,
            ca_certs=str(credentials.ca_certs),
            username=credentials.username,
            password_file=str(credentials.password_file),
        )

    # ----------------------------------------------------------------- lifecycle

    def _write_config(self, es_home: Path) -> None:
        if not self.config_dir.is_dir():
            shutil.copytree(es_home / "config", self.config_dir)
        settings: dict[str, object] = {
            "cluster.name": self.cluster_name,
            "node.name": self.name,
            "path.data": str(self.home / "data"),
            "path.logs": str(self.home / "logs"),
            "network.host": "127.0.0.1",
            "http.port": self.http_port,
            "transport.port": self.transport_port,
            "action.destructive_requires_name": False,
            # Small dev disks must not flip indices to read-only mid-test.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        if self.seed_hosts:
            settings["discovery.seed_hosts"] = self.seed_hosts
            settings["cluster.initial_master_nodes"] = self.initial_master_nodes or [self.name]
        else:
            settings["discovery.type"] = "single-node"
        if self.flavor.product == "elasticsearch":
            settings["xpack.security.enabled"] = False
        if self.security:
            settings.update(secure.node_settings())
        text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
        (self.config_dir / f"{self.flavor.product}.yml").write_text(text)
        self._absolute_jvm_paths()

    def _absolute_jvm_paths(self) -> None:
        """jvm.options of 7.x and OpenSearch name ``logs/`` and ``data`` relative to the
        working directory, which the launcher sets to the (read-only) distribution."""
        options = self.config_dir / "jvm.options"
        text = options.read_text()
        fixed = (
            text.replace("file=logs/", f"file={self.home}/logs/")
            .replace("-Xloggc:logs/", f"-Xloggc:{self.home}/logs/")
            .replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={self.home}/logs/")
            .replace("-XX:HeapDumpPath=data\n", f"-XX:HeapDumpPath={self.home}/data\n")
        )
        if fixed != text:
            options.write_text(fixed)

    def _port_taken(self, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    def start(self, timeout: float = 120.0, *, wait_healthy: bool = True) -> str:
        """Start (or reuse) the node and return its URL once it answers.

        ``wait_healthy=False`` returns as soon as HTTP answers at all: the first node of a
        cluster cannot be healthy before its peers join.
        """
        if self.is_running():
            self._wait(timeout, wait_healthy)
            log.info("devnode_reused", node=self.name, url=self.url)
            return self.url
        for port in (self.http_port, self.transport_port):
            if self._port_taken(port):
                raise DevNodeError(
                    f"port {port} is already in use by another process; choose another "
                    "with --port/--transport-port"
                )
        if self.security and self.flavor.product != "elasticsearch":
            raise DevNodeError(f"--security is for Elasticsearch nodes, not {self.flavor.label}")
        es_home = ensure_distribution(self.flavor, self.distribution)
        java = find_java(self.flavor)
        for sub in ("data", "logs", "tmp"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self._record_start()
        if self.security:
            es_home = self._prepare_security(es_home, java)
        else:
            shutil.rmtree(self.credentials_dir, ignore_errors=True)
        self._write_config(es_home)
        self.pid_file.unlink(missing_ok=True)
        user = self._runtime_user()
        if user is not None:
            self._chown_tree(self.home, user)
            if self.security:  # the client's files stay with whoever started the node
                self._chown_back(self.credentials_dir)
        prefix = self.flavor.env_prefix
        env = {
            **os.environ,
            f"{prefix}_JAVA_HOME": str(java),
            f"{prefix}_PATH_CONF": str(self.config_dir),
            f"{prefix}_TMPDIR": str(self.home / "tmp"),
            f"{prefix}_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
        }
        env.pop("JAVA_HOME", None)
        started = time.monotonic()
        log.info("devnode_starting", node=self.name, version=self.flavor.spec, java=str(java))
        launcher = es_home / "bin" / self.flavor.product
        with self.console_log.open("ab") as console:
            process = subprocess.Popen(
                [str(launcher), "-d", "-p", str(self.pid_file)],
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.home,
                start_new_session=True,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
            code = process.wait(timeout=timeout)
        if code != 0:
            raise DevNodeError(
                f"Elasticsearch exited with status {code} while starting; "
                f"see {self.console_log}: {self._tail_console()}"
            )
        self._wait(timeout - (time.monotonic() - started), wait_healthy)
        log.info(
            "devnode_started",
            node=self.name,
            url=self.url,
            seconds=round(time.monotonic() - started, 1),
        )
        return self.url

    def _prepare_security(self, es_home: Path, java: Path) -> Path:
        """The plugin-carrying distribution, certificates, keystore and client files."""
        try:
            with _locked(cache_dir() / "dist.lock"):
                plugin = secure.build_plugin(cache_dir(), java, es_home)
                es_home = secure.secured_distribution(es_home, plugin)
            if not self.config_dir.is_dir():
                shutil.copytree(es_home / "config", self.config_dir)
            secure.prepare(es_home, self.config_dir, self.credentials_dir, java)
        except secure.SecureSetupError as exc:
            raise DevNodeError(str(exc)) from None
        return es_home

    @staticmethod
    def _chown_back(directory: Path) -> None:
        uid, gid = os.getuid(), os.getgid()
        os.chown(directory, uid, gid)
        directory.chmod(0o700)
        for path in directory.iterdir():
            os.chown(path, uid, gid)

    def _wait(self, timeout: float, healthy: bool) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        grace = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            code = self._http_status()
            if code == 200 or (code is not None and not healthy):
                return
            if not self.is_running() and not self._launching(grace):
                raise DevNodeError(
                    f"the node stopped while starting: {self._tail_console()}"
                    f"{self._tail_server_log()}"
                )
            time.sleep(0.25)
        raise DevNodeError(f"the node did not answer within {timeout:.0f}s; see {self.console_log}")

    def _launching(self, grace: float) -> bool:
        """Whether the launch is still under way although the pid file names no live node.

        7.x and OpenSearch return from ``-d`` at once; their JVM creates the pid file only
        once it has bootstrapped (on a loaded machine, later than any fixed grace) and
        writes the number into it a moment after creating it, so neither "no file yet" nor
        "a file without a live pid" means the node died. Their launcher and the JVM both
        carry ``-p <pid file>`` on their command line: while a process has it, the node is
        still coming up. The grace is only for a system without ``/proc``.
        """
        if not Path("/proc").is_dir():
            return time.monotonic() <= grace
        return bool(processes_with("cmdline", str(self.pid_file).encode()))

    def _tail_server_log(self, lines: int = 3) -> str:
        """The last lines of the node's own log: a daemonized 7.x or OpenSearch node writes
        why it stopped there, not to the console."""
        logs = [
            path
            for path in (self.home / "logs").glob("*.log")
            if path != self.console_log and not path.name.startswith("gc")
        ]
        if not logs:
            return ""
        newest = max(logs, key=lambda path: path.stat().st_mtime)
        tail = _tail(newest, lines, width=300)
        return "" if tail is None else f"; {newest}: {tail}"

    def _tail_console(self, lines: int = 3) -> str:
        tail = _tail(self.console_log, lines)
        return "(no console log)" if tail is None else tail

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop this node only; returns False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        self.resume()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("devnode_stopped", node=self.name)
        return True

    def pause(self) -> None:
        """Freeze the JVM (SIGSTOP): the node keeps its sockets but answers nothing."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    def wipe(self) -> None:
        """Forget all data (the node must be stopped)."""
        if self.is_running():
            raise DevNodeError(f"node {self.name} is running; stop it before wiping its data")
        shutil.rmtree(self.home, ignore_errors=True)

    # ----------------------------------------------------------------- privileges

    @staticmethod
    def _runtime_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(RUN_AS_WHEN_ROOT)
        except KeyError as exc:
            raise DevNodeError(
                "Elasticsearch refuses to run as root and there is no 'nobody' user to run it as"
            ) from exc

    @staticmethod
    def _chown_tree(root: Path, user: pwd.struct_passwd) -> None:
        for directory, _dirs, files in os.walk(root):
            os.chown(directory, user.pw_uid, user.pw_gid)
            for name in files:
                os.chown(Path(directory) / name, user.pw_uid, user.pw_gid)
        # Parents must be traversable by the runtime user.
        for parent in root.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o011)
