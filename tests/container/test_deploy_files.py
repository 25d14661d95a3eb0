"""The Dockerfile, docker-compose.yml and deploy/kubernetes/ checked by the tools users run.

hadolint lints the Dockerfile, ``docker compose config`` validates the compose file and
kubernetes-validate checks the manifests against the Kubernetes schemas; each tool is also
shown to reject a broken copy, so a pass means something. The facts the files must agree on
(the uid, the settings names, the Elasticsearch version, the probes) are read from their
single sources.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import ENV_PREFIX, Settings
from devtools.devnode import ES_VERSION
from tests.container.tools import REPO, compose_command, run_tool, venv_tool

pytestmark = pytest.mark.container

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
KUBERNETES = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # native sidecars (restartPolicy on init containers) are on
COMPOSE_ENV = {
    "ELASTIC_PASSWORD": "pw1",
    "KIBANA_PASSWORD": "pw2",
    "KIBANA_ENCRYPTION_KEY": "k" * 32,
}


def _stages(text: str) -> list[str]:
    """The Dockerfile split at each FROM line."""
    return re.split(r"(?m)^FROM ", text)[1:]


def _setting_names() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


class TestDockerfile:
    def test_hadolint_passes(self) -> None:
        """hadolint finds nothing to report in the Dockerfile."""
        result = run_tool([venv_tool("hadolint"), str(DOCKERFILE)])
        assert result.returncode == 0, result.stdout + result.stderr

    def test_hadolint_rejects_a_flawed_copy(self, tmp_path: Path) -> None:
        """The linter is really looking: a root user and an apt cache left behind are caught."""
        flawed = tmp_path / "Dockerfile"
        flawed.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y gcc\n")
        result = run_tool([venv_tool("hadolint"), str(flawed)])
        assert result.returncode != 0
        assert "DL3008" in result.stdout or "DL3009" in result.stdout

    def test_runtime_stage_has_no_compiler_and_a_fixed_user(self) -> None:
        """The compiler is installed in the build stage only; the runtime runs as 10001."""
        build, runtime = _stages(DOCKERFILE.read_text())
        assert "gcc" in build
        assert "APPMIXER_AUDIT_COMPILE=1" in build
        assert "gcc" not in runtime
        assert "apt-get" not in runtime
        assert re.search(r"(?m)^USER 10001:10001$", runtime)

    def test_entrypoint_healthcheck_volumes_and_labels(self) -> None:
        """Exec-form CLI entrypoint (SIGTERM reaches the agent), /healthz, volumes, OCI labels."""
        runtime = _stages(DOCKERFILE.read_text())[1]
        assert 'ENTRYPOINT ["appmixer-audit"]' in runtime
        assert "/healthz" in re.search(r"(?ms)^HEALTHCHECK .*?\]$", runtime).group(0)  # type: ignore[union-attr]
        volumes = json.loads(re.search(r"(?m)^VOLUME (.*)$", runtime).group(1))  # type: ignore[union-attr]
        assert volumes == ["/var/lib/appmixer-audit/state", "/var/lib/appmixer-audit/dead-letter"]
        for label in ("title", "description", "version", "revision", "licenses"):
            assert f"org.opencontainers.image.{label}=" in runtime

    def test_environment_names_are_settings(self) -> None:
        """Every APPMIXER_AUDIT_* variable the image sets is a real setting."""
        names = set(re.findall(r"\b(APPMIXER_AUDIT_[A-Z_]+)=", _stages(DOCKERFILE.read_text())[1]))
        assert names
        assert names <= _setting_names()


def _compose(*args: str, env: dict[str, str] | None = None) -> Any:
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    return run_tool(
        [*compose_command(), "--project-directory", str(REPO), "-f", str(COMPOSE), *args],
        env={**clean, **(env or {})},
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The compose file as `docker compose config` resolves it."""
    result = _compose("config", "--format", "json", env=COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


class TestCompose:
    def test_config_passes(self) -> None:
        """`docker compose config` accepts the file once the passwords are given."""
        result = _compose("config", "--quiet", env=COMPOSE_ENV)
        assert result.returncode == 0, result.stderr

    @pytest.mark.parametrize("missing", sorted(COMPOSE_ENV))
    def test_missing_secret_is_one_clear_error(self, missing: str) -> None:
        """Without one of the .env values the file names that variable and how to make it."""
        env = {name: value for name, value in COMPOSE_ENV.items() if name != missing}
        result = _compose("config", "--quiet", env=env)
        assert result.returncode != 0
        assert missing in result.stderr
        assert "make compose-env" in result.stderr

    def test_config_rejects_a_broken_copy(self, tmp_path: Path) -> None:
        """The validator is really looking: an unknown depends_on condition fails."""
        broken = tmp_path / "docker-compose.yml"
        broken.write_text(COMPOSE.read_text().replace("service_healthy", "service_happy", 1))
        result = run_tool(
            [*compose_command(), "-f", str(broken), "config", "--quiet"],
            env={**os.environ, **COMPOSE_ENV},
        )
        assert result.returncode != 0

    def test_official_images_of_one_version(self, config: dict[str, Any]) -> None:
        """Elasticsearch and Kibana are Elastic's images, at the version the project pins."""
        services = config["services"]
        assert services["elasticsearch"]["image"] == (
            f"docker.elastic.co/elasticsearch/elasticsearch:{ES_VERSION}"
        )
        assert services["kibana"]["image"] == f"docker.elastic.co/kibana/kibana:{ES_VERSION}"

    def test_single_node_with_security_on(self, config: dict[str, Any]) -> None:
        environment = config["services"]["elasticsearch"]["environment"]
        assert environment["discovery.type"] == "single-node"
        assert environment["xpack.security.enabled"] == "true"
        assert environment["ELASTIC_PASSWORD"] == COMPOSE_ENV["ELASTIC_PASSWORD"]

    def test_start_order_by_health_and_completion(self, config: dict[str, Any]) -> None:
        """Kibana after its password is set, setup after both are healthy, agent after setup."""
        services = config["services"]

        def conditions(name: str) -> dict[str, str]:
            return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

        assert conditions("kibana") == {"kibana-password": "service_completed_successfully"}
        assert conditions("setup") == {
            "elasticsearch": "service_healthy",
            "kibana": "service_healthy",
        }
        assert conditions("agent")["setup"] == "service_completed_successfully"
        for name in ("elasticsearch", "kibana", "agent"):
            assert services[name]["healthcheck"]["test"]
        assert "/healthz" in str(services["agent"]["healthcheck"]["test"])

    def test_agent_is_a_sidecar_of_the_simulated_service(self, config: dict[str, Any]) -> None:
        """The agent reads the simulator's log volume read-only and runs on a read-only root."""
        services = config["services"]

        def mounts(name: str) -> dict[str, dict[str, Any]]:
            return {m["target"]: m for m in services[name]["volumes"]}

        written = mounts("simulator")["/var/log/appmixer"]
        read = mounts("agent")["/var/log/appmixer"]
        assert written["source"] == read["source"] == "applogs"
        assert read["read_only"] is True
        assert services["agent"]["read_only"] is True
        assert "/var/log/appmixer/audit.ndjson" in services["simulator"]["command"]

    def test_agent_signs_with_the_chain_key_from_env_file(
        self, config: dict[str, Any], tmp_path: Path
    ) -> None:
        """CHAIN_KEY (written by `make compose-env`) reaches the agent as a secret file."""
        agent = config["services"]["agent"]
        (secret,) = agent["secrets"]
        key_file = agent["environment"]["APPMIXER_AUDIT_CHAIN_KEY_FILE"]
        assert key_file == f"/run/secrets/{secret['target']}"
        assert config["secrets"][secret["source"]]["environment"] == "CHAIN_KEY"
        shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
        made = subprocess.run(
            ["make", "-s", "compose-env"], cwd=tmp_path, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        env_file = tmp_path / ".env"
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert set(values) == {*COMPOSE_ENV, "CHAIN_KEY"}
        assert len(values["CHAIN_KEY"].encode()) >= 32  # the agent's minimum
        assert env_file.stat().st_mode & 0o077 == 0

    def test_agent_environment_names_are_settings(self, config: dict[str, Any]) -> None:
        for name in ("setup", "agent"):
            names = set(config["services"][name]["environment"])
            assert names <= _setting_names(), names - _setting_names()


def _manifests() -> list[Path]:
    return sorted(KUBERNETES.glob("*.yaml"))


def _deployment() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())  # type: ignore[no-any-return]


def _agent_container(deployment: dict[str, Any]) -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    (agent,) = [c for c in pod["initContainers"] if c["name"] == "audit-agent"]
    return agent  # type: ignore[no-any-return]


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / (1024 * 1024)


class TestKubernetes:
    def test_manifests_match_the_schemas(self) -> None:
        """Every manifest passes strict validation against the Kubernetes schemas."""
        files = [str(path) for path in _manifests()]
        assert len(files) >= 2
        result = run_tool(
            [venv_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *files]
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("passed") == len(files), result.stdout

    def test_validator_rejects_a_broken_copy(self, tmp_path: Path) -> None:
        """The validator is really looking: a misspelt field fails strict validation."""
        broken = tmp_path / "deployment.yaml"
        broken.write_text(
            (KUBERNETES / "deployment.yaml").read_text().replace("readinessProbe", "readynessProbe")
        )
        result = run_tool(
            [venv_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(broken)]
        )
        assert result.returncode != 0

    def test_native_sidecar_shares_the_log_volume(self) -> None:
        """The agent is an init container that keeps running and reads the service's emptyDir."""
        deployment = _deployment()
        pod = deployment["spec"]["template"]["spec"]
        agent = _agent_container(deployment)
        assert agent["restartPolicy"] == "Always"
        (service,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        shared = {m["name"] for m in agent["volumeMounts"]} & {
            m["name"] for m in service["volumeMounts"]
        }
        assert shared == {"audit-logs"}
        assert "emptyDir" in volumes["audit-logs"]
        assert pod["terminationGracePeriodSeconds"] > Settings().shutdown_grace

    def test_probes_on_healthz_and_readyz(self) -> None:
        agent = _agent_container(_deployment())
        assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
        port = agent["ports"][0]["containerPort"]
        metrics = {e["name"]: e.get("value") for e in agent["env"]}
        assert metrics["APPMIXER_AUDIT_METRICS_ADDRESS"].endswith(f":{port}")

    def test_non_root_read_only_and_the_images_uid(self) -> None:
        """runAsUser is the uid the Dockerfile creates; the root filesystem is read-only."""
        deployment = _deployment()
        agent = _agent_container(deployment)
        context = agent["securityContext"]
        uid = re.search(r"(?m)^USER (\d+):(\d+)$", DOCKERFILE.read_text())
        assert uid is not None
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == int(uid.group(1))
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]

    def test_api_key_from_a_secret_file(self) -> None:
        """The key is read from the Secret shipped beside the Deployment, mounted as a file."""
        deployment = _deployment()
        agent = _agent_container(deployment)
        env = {e["name"]: e.get("value") for e in agent["env"]}
        assert set(env) <= _setting_names()
        key_file = Path(env["APPMIXER_AUDIT_ES_API_KEY_FILE"])
        (mount,) = [m for m in agent["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
        assert mount["readOnly"] is True
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        source = volumes[mount["name"]]["secret"]
        secret = yaml.safe_load((KUBERNETES / "secret.yaml").read_text())
        assert secret["kind"] == "Secret"
        assert source["secretName"] == secret["metadata"]["name"]
        assert key_file.name in secret["stringData"]
        assert source["defaultMode"] & 0o007 == 0  # not world-readable

    def test_chain_key_from_a_secret_of_its_own(self) -> None:
        """Checkpoints are signed: the chain key is a Secret's file, mounted read-only, not
        world-readable, and no key ships with the manifests."""
        deployment = _deployment()
        agent = _agent_container(deployment)
        env = {e["name"]: e.get("value") for e in agent["env"]}
        key_file = Path(env["APPMIXER_AUDIT_CHAIN_KEY_FILE"])
        (mount,) = [m for m in agent["volumeMounts"] if m["mountPath"] == str(key_file.parent)]
        assert mount["readOnly"] is True
        assert "subPath" not in mount  # a subPath mount never sees the Secret's updates
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        source = volumes[mount["name"]]["secret"]
        es_secret = yaml.safe_load((KUBERNETES / "secret.yaml").read_text())
        assert source["secretName"] != es_secret["metadata"]["name"]
        assert source["defaultMode"] & 0o007 == 0
        assert key_file.name not in es_secret["stringData"]
        assert f"--from-file={key_file.name}=" in (KUBERNETES / "secret.yaml").read_text()

    def test_resources_cover_the_measured_peak(self) -> None:
        """Requests cover the measured idle RSS (54 MiB); the limit the backfill peak (172 MiB)."""
        resources = _agent_container(_deployment())["resources"]
        assert _mebibytes(resources["requests"]["memory"]) >= 54
        assert _mebibytes(resources["limits"]["memory"]) >= 172 * 1.25
        assert resources["requests"]["cpu"]
        assert resources["limits"]["cpu"]
