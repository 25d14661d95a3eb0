"""What a dev node needs to run with security on: certificates, a superuser, an analysis plugin.

TLS material comes from the distribution's own ``bin/elasticsearch-certutil`` (a CA, then a
node certificate for 127.0.0.1 and localhost, PEM). The ``elastic`` superuser's password is a
random one put in the node's keystore as ``bootstrap.password``. Clients get the CA and the
password as files of their own, mode 0600, so nothing secret is ever passed on a command line.

API keys need the ``.security`` system index, whose settings use ``pattern_capture``,
``unique`` and ``uax_url_email``: the integ-test distribution lacks the module that provides
them, so ``es-analysis-plugin/`` (a stable plugin, sources beside this file) is built with
Maven once, cached outside the repository, and installed into a secured copy of the
distribution (hard links, so the shared plain distribution is never modified).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.log import get_logger

PLUGIN_NAME = "appmixer-audit-analysis"
PLUGIN_SOURCES = Path(__file__).resolve().parent / "es-analysis-plugin"
SUPERUSER = "elastic"

log = get_logger(__name__)


class SecureSetupError(Exception):
    """Certificates, keystore or plugin could not be made; the message says why."""


@dataclass(frozen=True)
class Credentials:
    """What a client needs to reach the secured node: CA file, user, password file."""

    ca_certs: Path
    username: str
    password_file: Path

    def password(self) -> str:
        return self.password_file.read_text().strip()


def _run(command: list[str], *, env: dict[str, str], what: str, stdin: str | None = None) -> None:
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        detail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-4:])
        raise SecureSetupError(f"{what} failed (exit {result.returncode}): {detail}")


def write_private(path: Path, data: bytes) -> None:
    """Create or replace a file readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temp.replace(path)


# --------------------------------------------------------------------------- plugin


def _sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PluginTarget:
    """The Elasticsearch the plugin is built for: its version, its Lucene, its Java."""

    elasticsearch: str
    lucene: str
    java_release: int

    @classmethod
    def of(cls, es_home: Path) -> PluginTarget:
        """Read from the distribution's own jars: the plugin must match them exactly."""
        lib = es_home / "lib"

        def version_of(prefix: str) -> str:
            for jar in sorted(lib.glob(f"{prefix}-*.jar")):
                version = jar.stem.removeprefix(f"{prefix}-")
                if version[:1].isdigit():
                    return version
            raise SecureSetupError(f"no {prefix} jar in {lib}: not an Elasticsearch home")

        elasticsearch = version_of("elasticsearch")
        major = int(elasticsearch.split(".")[0])
        return cls(elasticsearch, version_of("lucene-core"), 21 if major >= 9 else 17)


def build_plugin(cache: Path, java_home: Path, es_home: Path) -> Path:
    """The plugin zip for the distribution at ``es_home``, built with Maven into the cache
    once per version of its sources and of Elasticsearch."""
    target = PluginTarget.of(es_home)
    digest = _sources_digest(PLUGIN_SOURCES)
    built = cache / "plugins" / f"{PLUGIN_NAME}-{target.elasticsearch}-{digest}.zip"
    if built.is_file():
        return built
    if shutil.which("mvn") is None:
        raise SecureSetupError("building the analysis plugin needs Maven (`mvn`) on PATH")
    build_dir = cache / "plugins" / f"build-{target.elasticsearch}-{digest}"
    log.info(
        "plugin_build", sources=str(PLUGIN_SOURCES), digest=digest, for_version=target.elasticsearch
    )
    env = {**os.environ, "JAVA_HOME": str(java_home)}
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(PLUGIN_SOURCES / "pom.xml"),
            f"-Dplugin.build.dir={build_dir}",
            f"-Delasticsearch.version={target.elasticsearch}",
            f"-Dlucene.version={target.lucene}",
            f"-Dmaven.compiler.release={target.java_release}",
            "package",
        ],
        env=env,
        what="building the analysis plugin with Maven",
    )
    made = sorted(build_dir.glob(f"{PLUGIN_NAME}-*.zip"))
    if not made:
        raise SecureSetupError(f"Maven built no plugin zip in {build_dir}")
    temp = built.with_suffix(".tmp")
    shutil.copyfile(made[-1], temp)
    temp.replace(built)
    shutil.rmtree(build_dir, ignore_errors=True)
    return built


def _link_tree(source: Path, target: Path) -> None:
    """A copy of the distribution made of hard links (a real copy across file systems)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link, symlinks=True)


def secured_distribution(es_home: Path, plugin_zip: Path) -> Path:
    """A distribution home beside ``es_home`` with the plugin installed (made once)."""
    home = es_home.with_name(f"{es_home.name}-secure-{plugin_zip.stem.rsplit('-', 1)[-1]}")
    marker = home / "plugins" / PLUGIN_NAME / "stable-plugin-descriptor.properties"
    if marker.is_file():
        return home
    staging = home.with_name(f".{home.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    _link_tree(es_home, staging)
    plugin_dir = staging / "plugins" / PLUGIN_NAME
    plugin_dir.mkdir(parents=True)
    # What `elasticsearch-plugin install` does for a stable plugin: unpack into plugins/<name>.
    with zipfile.ZipFile(plugin_zip) as bundle:
        bundle.extractall(plugin_dir)
    for path in [plugin_dir, *plugin_dir.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return home


# --------------------------------------------------------------------------- node config


def node_settings() -> dict[str, object]:
    """elasticsearch.yml lines for HTTPS and security; paths relative to the config dir."""
    return {
        "xpack.security.enabled": True,
        "xpack.security.http.ssl.enabled": True,
        "xpack.security.http.ssl.key": "certs/node.key",
        "xpack.security.http.ssl.certificate": "certs/node.crt",
        "xpack.security.http.ssl.certificate_authorities": ["certs/ca.crt"],
        "xpack.security.transport.ssl.enabled": True,
        "xpack.security.transport.ssl.verification_mode": "certificate",
        "xpack.security.transport.ssl.key": "certs/node.key",
        "xpack.security.transport.ssl.certificate": "certs/node.crt",
        "xpack.security.transport.ssl.certificate_authorities": ["certs/ca.crt"],
        "xpack.security.authc.api_key.enabled": True,
    }


def prepare(es_home: Path, config_dir: Path, credentials_dir: Path, java_home: Path) -> Credentials:
    """Certificates and keystore in the node's config; the client's copies in 0600 files.

    Made once per node directory: a restart keeps the CA, so clients keep trusting it.
    """
    env = {**os.environ, "ES_JAVA_HOME": str(java_home), "ES_PATH_CONF": str(config_dir)}
    env.pop("JAVA_HOME", None)
    certs = config_dir / "certs"
    if not (certs / "node.crt").is_file():
        _make_certificates(es_home, certs, env)
    password_file = credentials_dir / f"{SUPERUSER}.password"
    if not password_file.is_file():
        write_private(password_file, secrets.token_urlsafe(24).encode() + b"\n")
    password = password_file.read_text().strip()
    keystore = es_home / "bin" / "elasticsearch-keystore"
    if not (config_dir / "elasticsearch.keystore").is_file():
        _run([str(keystore), "create"], env=env, what="creating the keystore")
        _run(
            [str(keystore), "add", "--stdin", "bootstrap.password"],
            env=env,
            stdin=password,
            what="storing the bootstrap password",
        )
    ca_copy = credentials_dir / "ca.crt"
    write_private(ca_copy, (certs / "ca.crt").read_bytes())
    return Credentials(ca_copy, SUPERUSER, password_file)


def _make_certificates(es_home: Path, certs: Path, env: dict[str, str]) -> None:
    certutil = str(es_home / "bin" / "elasticsearch-certutil")
    work = certs.with_name("certs.work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _run(
        [certutil, "ca", "--pem", "--silent", "--days", "3650", "--out", str(work / "ca.zip")],
        env=env,
        what="elasticsearch-certutil ca",
    )
    with zipfile.ZipFile(work / "ca.zip") as bundle:
        bundle.extractall(work)
    _run(
        [
            certutil,
            "cert",
            "--pem",
            "--silent",
            "--days",
            "3650",
            "--ca-cert",
            str(work / "ca" / "ca.crt"),
            "--ca-key",
            str(work / "ca" / "ca.key"),
            "--name",
            "node",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--out",
            str(work / "node.zip"),
        ],
        env=env,
        what="elasticsearch-certutil cert",
    )
    with zipfile.ZipFile(work / "node.zip") as bundle:
        bundle.extractall(work)
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "ca" / "ca.crt", certs / "ca.crt")
    shutil.copyfile(work / "node" / "node.crt", certs / "node.crt")
    write_private(certs / "node.key", (work / "node" / "node.key").read_bytes())
    # The CA key is not needed once the node certificate exists: nothing keeps it.
    shutil.rmtree(work)
