"""Import the Kibana saved objects (``dashboards/appmixer-audit.ndjson``) in one request.

What Kibana's import expects, and what this module does about it:

* ``POST [/s/<space>]/api/saved_objects/_import?overwrite=true``, multipart/form-data with
  the NDJSON in a field named ``file`` whose file name ends ``.ndjson``, and a ``kbn-xsrf``
  header. ``overwrite`` with the file's fixed ids makes a second run update the same objects
  (never copies, which would lose the controls' data views).
* The answer is ``{success, successCount, successResults, errors}``; each result carries
  ``overwrite: true`` when it replaced an object, so created and updated are told apart.
  A missing reference makes Kibana import nothing at all, and says so per object.
* Before importing, ``GET /api/status`` is polled until Kibana reports ``available``: a
  Kibana that is still starting answers 503 or refuses connections for a while.

The dashboards are written for Kibana 8.11 and later. The controls' Apply button
(``controlGroupInput.showApplySelections``) exists from Kibana 8.14, and 8.11's dashboard
schema refuses the key, so the file leaves it out and the import switches it on when the
status answer says the Kibana is 8.14 or newer.

Pure parts (building the request, reading the answer) are separate from the I/O, which is
urllib3 (already there for the Elasticsearch client).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import urllib3

BUNDLED = "appmixer-audit.ndjson"
APPLY_BUTTON_SINCE = (8, 14, 0)
DEFAULT_SPACE = "default"


class KibanaError(Exception):
    """Kibana could not be reached or refused the request; the message is one line."""


@dataclass(frozen=True)
class Auth:
    """How to authenticate: an API key (``id:key`` base64, as Elasticsearch gives it) or
    a user and password; neither means anonymous."""

    api_key: str | None = None
    username: str | None = None
    password: str | None = None

    def header(self) -> dict[str, str]:
        if self.api_key:
            return {"authorization": f"ApiKey {self.api_key}"}
        if self.username:
            pair = f"{self.username}:{self.password or ''}".encode()
            return {"authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


@dataclass(frozen=True)
class Outcome:
    """What happened to one saved object."""

    status: Literal["created", "updated", "error"]
    type: str
    id: str
    title: str = ""
    reason: str = ""


@dataclass
class ImportReport:
    kibana_url: str
    space: str
    version: str = ""
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def errors(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def lines(self) -> list[str]:
        rows = [
            f"kibana {self.version or '?'} at {self.kibana_url}, space {self.space}: "
            f"{self.count('created')} created, {self.count('updated')} updated, "
            f"{self.count('error')} errors"
        ]
        for outcome in self.outcomes:
            detail = f": {outcome.reason}" if outcome.reason else ""
            title = f" ({outcome.title})" if outcome.title else ""
            rows.append(f"{outcome.status:<9}  {outcome.type}:{outcome.id}{title}{detail}")
        return rows

    def summary(self) -> str:
        """The one line that says why the import failed (empty when it did not)."""
        errors = self.errors
        if not errors:
            return ""
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        nothing = (
            " nothing was imported;" if not self.count("created") + self.count("updated") else ""
        )
        return f"Kibana import failed:{nothing} {first.type}:{first.id}: {first.reason}{more}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kibana_url": self.kibana_url,
            "space": self.space,
            "version": self.version,
            "created": self.count("created"),
            "updated": self.count("updated"),
            "errors": self.count("error"),
            "objects": [asdict(outcome) for outcome in self.outcomes],
        }


# ---------------------------------------------------------------- pure parts


def bundled_objects() -> bytes:
    """The NDJSON shipped in the ``dashboards`` package."""
    return (resources.files("dashboards") / BUNDLED).read_bytes()


def import_path(space: str) -> str:
    prefix = "" if space == DEFAULT_SPACE else f"/s/{quote(space)}"
    return f"{prefix}/api/saved_objects/_import?overwrite=true"


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def with_apply_button(ndjson: bytes, version: str) -> bytes:
    """The objects with the controls' Apply button on, where this Kibana version has it."""
    parsed = parse_version(version)
    if parsed is None or parsed < APPLY_BUTTON_SINCE:
        return ndjson
    lines = []
    for line in ndjson.decode().splitlines():
        obj = json.loads(line) if line.strip() else None
        group = obj.get("attributes", {}).get("controlGroupInput") if obj else None
        if obj and obj.get("type") == "dashboard" and isinstance(group, dict):
            group["showApplySelections"] = True
            lines.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
        else:
            lines.append(line + "\n")
    return "".join(lines).encode()


def multipart(ndjson: bytes, filename: str = BUNDLED) -> tuple[bytes, str]:
    """The request body (field ``file``, an ``.ndjson`` name) and its content type."""
    body, content_type = urllib3.encode_multipart_formdata(
        {"file": (filename, ndjson, "application/ndjson")}
    )
    return body, content_type


def _reason(error: dict[str, Any]) -> str:
    kind = error.get("type", "unknown")
    if kind == "missing_references":
        missing = ", ".join(
            f"{ref.get('type')}:{ref.get('id')}" for ref in error.get("references", [])
        )
        return f"missing references: {missing}"
    message = error.get("message") or error.get("reason") or ""
    return f"{kind}: {message}" if message else str(kind)


def read_response(body: dict[str, Any], report: ImportReport) -> ImportReport:
    """Fill ``report`` from the import answer: created, updated, or the error of each."""
    for item in body.get("successResults") or []:
        status: Literal["created", "updated"] = "updated" if item.get("overwrite") else "created"
        title = str((item.get("meta") or {}).get("title") or "")
        report.outcomes.append(Outcome(status, str(item.get("type")), str(item.get("id")), title))
    for error in body.get("errors") or []:
        title = str(error.get("title") or (error.get("meta") or {}).get("title") or "")
        reason = _reason(error.get("error") or {})
        report.outcomes.append(
            Outcome("error", str(error.get("type")), str(error.get("id")), title, reason)
        )
    if body.get("success") is False and not report.errors:
        report.outcomes.append(Outcome("error", "import", "-", reason="Kibana said success: false"))
    return report


def _message(response: urllib3.BaseHTTPResponse) -> str:
    """Kibana's error message from a non-200 answer (``{statusCode, error, message}``)."""
    text = response.data.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:200] if text.strip() else response.reason or ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or text)[:300]
    return text[:300]


# ---------------------------------------------------------------- I/O


class Kibana:
    """One Kibana, reached with urllib3 (TLS verified unless told otherwise)."""

    def __init__(
        self,
        url: str,
        *,
        auth: Auth | None = None,
        ca_certs: Path | None = None,
        verify_certs: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"kbn-xsrf": "appmixer-audit", **(auth or Auth()).header()}
        self.timeout = timeout
        options: dict[str, Any] = {"retries": False}
        if self.url.startswith("https://"):
            options["cert_reqs"] = "CERT_REQUIRED" if verify_certs else "CERT_NONE"
            if ca_certs is not None:
                options["ca_certs"] = str(ca_certs)
        self.http = urllib3.PoolManager(**options)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self.http.request(
                method,
                self.url + path,
                body=body,
                headers={**self.headers, **(headers or {})},
                timeout=urllib3.Timeout(total=self.timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise KibanaError(f"cannot reach Kibana at {self.url}: {exc}") from None

    def wait_available(
        self,
        timeout: float,
        *,
        interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> str:
        """Poll ``/api/status`` until the overall level is ``available``; the version."""
        deadline = clock() + timeout
        last = "no answer yet"
        while True:
            try:
                response = self.request("GET", "/api/status")
            except KibanaError as exc:
                last = str(exc)
            else:
                if response.status in {401, 403}:
                    raise KibanaError(
                        f"Kibana at {self.url} refused the credentials "
                        f"({response.status}): {_message(response)}"
                    )
                level, version = _status(response)
                if response.status == 200 and level == "available":
                    return version
                last = f"status {response.status}, level {level or 'unknown'}"
            if clock() >= deadline:
                raise KibanaError(
                    f"Kibana at {self.url} was not available within {timeout:g}s ({last})"
                )
            sleep(interval)

    def import_objects(self, ndjson: bytes, space: str, report: ImportReport) -> ImportReport:
        """One import request; a refused request (4xx, 5xx) raises with Kibana's message."""
        body, content_type = multipart(ndjson)
        path = import_path(space)
        response = self.request("POST", path, body=body, headers={"content-type": content_type})
        if response.status != 200:
            status = " ".join(str(part) for part in (response.status, response.reason) if part)
            raise KibanaError(f"Kibana refused the import ({status}): {_message(response)}")
        try:
            answer = json.loads(response.data)
        except ValueError:
            raise KibanaError(
                "Kibana answered the import with something that is not JSON"
            ) from None
        if not isinstance(answer, dict):
            raise KibanaError("Kibana answered the import with something that is not an object")
        return read_response(answer, report)

    def close(self) -> None:
        self.http.clear()


def _status(response: urllib3.BaseHTTPResponse) -> tuple[str, str]:
    """(overall level, version number) from a status answer; empty strings if unreadable."""
    try:
        body = json.loads(response.data)
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    overall = (body.get("status") or {}).get("overall") or {}
    level = str(overall.get("level") or overall.get("state") or "")
    if level == "green":  # Kibana 7's spelling
        level = "available"
    version = str((body.get("version") or {}).get("number") or "")
    return level, version


def import_dashboards(
    kibana: Kibana,
    *,
    space: str = DEFAULT_SPACE,
    wait: float = 120.0,
    ndjson: bytes | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportReport:
    """Wait for Kibana, then import the dashboards (overwrite, fixed ids): the report.

    ``space`` is a space id as the settings validate it."""
    version = kibana.wait_available(wait, sleep=sleep)
    report = ImportReport(kibana.url, space, version)
    objects = with_apply_button(ndjson if ndjson is not None else bundled_objects(), version)
    return kibana.import_objects(objects, space, report)
