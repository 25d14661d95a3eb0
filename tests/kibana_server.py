"""A small local HTTP server that enforces Kibana's saved-objects import contract.

It is NOT Kibana: Kibana cannot run on these machines. It holds what the import route and
its pipeline require (kibana ``src/core/.../routes/import.ts`` and
``import-export-server-internal/src/import``), so the client is tested against the contract
rather than against our own assumptions:

* ``GET /api/status``: ``{version: {number}, status: {overall: {level}}}``; 503 while
  "starting" (the first ``unavailable_polls`` calls); 401 without the right credentials.
* ``POST [/s/<space>]/api/saved_objects/_import``: 400 without a ``kbn-xsrf`` header; 401
  without credentials; 404 for an unknown space; multipart/form-data with a field ``file``
  whose file name ends ``.ndjson`` (else 400 "Invalid file extension"); 400 for a line that
  is not JSON or a repeated type:id; 400 for ``overwrite`` with ``createNewCopies``.
* References of type ``index-pattern`` and ``search`` must resolve in the file or the
  space; any missing one, or a conflict without ``overwrite``, imports nothing
  (``success: false``, ``successCount: 0``) and names each object's problem; otherwise
  every object is stored and reported, ``overwrite: true`` when it replaced one.
* ``POST [/s/<space>]/api/detection_engine/rules/_import`` (same multipart, header and
  authentication rules): one rule a line; before Kibana 8.15 a ``required_fields`` entry
  without ``ecs`` refuses that rule (``required_fields.0.ecs: Required``, as a real 8.12.2
  answered); the others are stored by ``rule_id``. The answer has the route's shape
  (``success``, ``success_count``, ``rules_count``, ``errors: [{rule_id, error: {status_code,
  message}}]``, and the exceptions and connectors counts).

What opens badly rather than imports badly is the project's own rule, and the server holds
it too unless ``page_rules`` is off: a saved object that breaks a page rule of
``devtools.kibana_check`` (a table of events with a row cap, a panel needing an aggregation
outside the basic set, a drilldown instead of a link) and a detection rule without
``timestamp_override: event.ingested`` are answered as that object's error (the per-object
``unknown`` error Kibana gives an object it cannot create), so ``setup`` or a test that
imports a broken copy fails. A real Kibana would import them and fail later, on the page or
in the rule's runs.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.kibana_check import check, check_rules
from indexer.kibana import parse_version

CHECKED_REFERENCE_TYPES = ("index-pattern", "search")
IMPORTABLE = frozenset({"index-pattern", "search", "dashboard", "lens", "visualization", "tag"})
PAGE_RULES = frozenset({"row-cap", "aggregation", "link"})
RULE_ECS_COMPUTED_SINCE = (8, 15, 0)  # kibana PR #180682: the server fills ``ecs`` itself


@dataclass
class KibanaContract:
    """The server's state: spaces and their objects, what it expects, what it saw."""

    version: str = "8.11.0"
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    unavailable_polls: int = 0
    spaces: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=lambda: {"default": {}}
    )
    requests: list[tuple[str, str]] = field(default_factory=list)
    imported_files: list[bytes] = field(default_factory=list)
    rules: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    page_rules: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None and self.username is None:
            return True
        if header is None:
            return False
        if self.api_key is not None and header == f"ApiKey {self.api_key}":
            return True
        if self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            return header == "Basic " + base64.b64encode(pair).decode()
        return False


def _error(status: int, error: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"statusCode": status, "error": error, "message": message}


def _file_part(content_type: str, body: bytes) -> tuple[str | None, bytes | None]:
    """(file name, content) of the multipart field named ``file``."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None, None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return part.get_filename(), payload if isinstance(payload, bytes) else None
    return None, None


def read_objects(
    query: dict[str, list[str]], content_type: str, body: bytes, *, saved_objects: bool = True
) -> tuple[list[dict[str, Any]], tuple[int, dict[str, Any]] | None]:
    """The objects of an import request, or the error Kibana answers it with (``type:id``
    twice is refused for saved objects; rules have no such key)."""
    objects: list[dict[str, Any]] = []
    overwrite = query.get("overwrite", ["false"])[0] == "true"
    filename, data = _file_part(content_type, body)
    if overwrite and query.get("createNewCopies", ["false"])[0] == "true":
        error = _error(400, "Bad Request", "cannot use [overwrite] with [createNewCopies]")
    elif not content_type.startswith("multipart/form-data"):
        error = _error(415, "Unsupported Media Type", "Unsupported Media Type")
    elif filename is None or data is None:
        error = _error(400, "Bad Request", "[request body.file]: expected value of type [Stream]")
    elif not filename.endswith(".ndjson"):
        extension = "." + filename.rsplit(".", 1)[-1] if "." in filename else filename
        error = _error(400, "Bad Request", f"Invalid file extension {extension}")
    else:
        error = None
    if error is not None or data is None:
        return objects, error
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            return objects, _error(400, "Bad Request", f"Unexpected token in JSON: {exc}")
        if not (isinstance(obj, dict) and "exportedCount" in obj):
            objects.append(obj)
    keys = [(obj.get("type"), obj.get("id")) for obj in objects] if saved_objects else []
    repeated = sorted({f"{t}:{i}" for t, i in keys if keys.count((t, i)) > 1})
    if repeated:
        message = f"Non-unique import objects detected: [{','.join(repeated)}]"
        return objects, _error(400, "Bad Request", message)
    return objects, None


def _page_problems(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(type, id) -> the first page rule the object breaks (``devtools.kibana_check``)."""
    text = "".join(json.dumps(obj) + "\n" for obj in objects)
    found: dict[tuple[str, str], str] = {}
    for problem in check(text):
        if problem.rule not in PAGE_RULES:
            continue
        number = int(problem.where.split()[1]) - 1
        obj = objects[number]
        found.setdefault((str(obj.get("type")), str(obj.get("id"))), str(problem))
    return found


def handle_import(
    contract: KibanaContract, space: str, query: dict[str, list[str]], objects: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """The saved-objects import of ``objects`` (read from the request) into ``space``."""
    overwrite = query.get("overwrite", ["false"])[0] == "true"
    stored = contract.spaces[space]
    errors: list[dict[str, Any]] = []
    supported = []
    broken = _page_problems(objects) if contract.page_rules else {}
    for obj in objects:
        meta = {"title": obj.get("attributes", {}).get("title", "")}
        problem = broken.get((str(obj.get("type")), str(obj.get("id"))))
        if problem is not None:
            errors.append(
                {"type": obj.get("type"), "id": obj.get("id"), "meta": meta,
                 "error": {"type": "unknown", "message": problem, "statusCode": 400}}
            )  # fmt: skip
        elif obj.get("type") not in IMPORTABLE:
            errors.append(
                {"type": obj.get("type"), "id": obj.get("id"), "meta": meta,
                 "error": {"type": "unsupported_type"}}
            )  # fmt: skip
        else:
            supported.append(obj)
    in_file = {(obj["type"], obj["id"]) for obj in supported} | set(broken)
    resolvable = False
    for obj in supported:
        meta = {"title": obj.get("attributes", {}).get("title", "")}
        missing = [
            {"type": ref["type"], "id": ref["id"]}
            for ref in obj.get("references", [])
            if ref.get("type") in CHECKED_REFERENCE_TYPES
            and (ref["type"], ref["id"]) not in in_file
            and (ref["type"], ref["id"]) not in stored
        ]
        if missing:
            errors.append(
                {"type": obj["type"], "id": obj["id"], "title": meta["title"], "meta": meta,
                 "error": {"type": "missing_references", "references": missing}}
            )  # fmt: skip
            resolvable = True
        elif (obj["type"], obj["id"]) in stored and not overwrite:
            errors.append(
                {"type": obj["type"], "id": obj["id"], "title": meta["title"], "meta": meta,
                 "error": {"type": "conflict"}}
            )  # fmt: skip
            resolvable = True
    if resolvable:  # createSavedObjects: any resolvable error means nothing is created
        return 200, {"success": False, "successCount": 0, "errors": errors, "warnings": []}
    results = []
    for obj in supported:
        key = (obj["type"], obj["id"])
        result: dict[str, Any] = {
            "type": obj["type"],
            "id": obj["id"],
            "meta": {"title": obj.get("attributes", {}).get("title", "")},
            "managed": False,
        }
        if key in stored:
            result["overwrite"] = True
        stored[key] = obj
        results.append(result)
    answer: dict[str, Any] = {
        "success": not errors,
        "successCount": len(results),
        "successResults": results,
        "warnings": [],
    }
    if errors:
        answer["errors"] = errors
    return 200, answer


def handle_rules_import(
    contract: KibanaContract, space: str, rules: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """The detection engine's rule import: per-rule errors, the rest stored by rule_id."""
    stored = contract.rules.setdefault(space, {})
    needs_ecs = (parse_version(contract.version) or (0, 0, 0)) < RULE_ECS_COMPUTED_SINCE
    project = {}
    if contract.page_rules:
        text = "".join(json.dumps(rule) + "\n" for rule in rules)
        for problem in check_rules(text):
            if problem.rule == "timestamp-override":
                project.setdefault(int(problem.where.split()[1]) - 1, str(problem))
    errors: list[dict[str, Any]] = []
    for number, rule in enumerate(rules):
        rule_id = str(rule.get("rule_id", "(unknown id)"))
        message = None
        for position, entry in enumerate(rule.get("required_fields") or []):
            if needs_ecs and (not isinstance(entry, dict) or "ecs" not in entry):
                message = f"required_fields.{position}.ecs: Required"
                break
        message = message or project.get(number)
        if message is not None:
            errors.append({"rule_id": rule_id, "error": {"status_code": 400, "message": message}})
        else:
            stored[rule_id] = rule
    success_count = len(rules) - len(errors)
    answer = {
        "success": not errors,
        "success_count": success_count,
        "rules_count": len(rules),
        "errors": errors,
        "exceptions_success": True,
        "exceptions_success_count": 0,
        "exceptions_errors": [],
        "action_connectors_success": True,
        "action_connectors_success_count": 0,
        "action_connectors_errors": [],
        "action_connectors_warnings": [],
    }
    return 200, answer


class _Handler(BaseHTTPRequestHandler):
    contract: KibanaContract

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        contract = self.contract
        path = urlsplit(self.path).path
        with contract.lock:
            contract.requests.append(("GET", self.path))
            if path != "/api/status":
                self._send(*_error(404, "Not Found", "Not Found"))
                return
            if not contract.authorized(self.headers.get("authorization")):
                self._send(*_error(401, "Unauthorized", "Unauthorized"))
                return
            starting = contract.unavailable_polls > 0
            if starting:
                contract.unavailable_polls -= 1
            level = "unavailable" if starting else "available"
            body = {
                "name": "contract-server",
                "version": {"number": contract.version},
                "status": {"overall": {"level": level, "summary": f"Kibana is {level}"}},
            }
            self._send(503 if starting else 200, body)

    def do_POST(self) -> None:
        contract = self.contract
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        with contract.lock:
            contract.requests.append(("POST", self.path))
            space, path = "default", parts.path
            if path.startswith("/s/"):
                _, _, space, path = path.split("/", 3)
                path = "/" + path
            saved_objects = path == "/api/saved_objects/_import"
            if not saved_objects and path != "/api/detection_engine/rules/_import":
                self._send(*_error(404, "Not Found", "Not Found"))
                return
            if self.headers.get("kbn-xsrf") is None:
                self._send(*_error(400, "Bad Request", "Request must contain a kbn-xsrf header."))
                return
            if not contract.authorized(self.headers.get("authorization")):
                self._send(*_error(401, "Unauthorized", "Unauthorized"))
                return
            if space not in contract.spaces:
                self._send(*_error(404, "Not Found", f"Saved object [space/{space}] not found"))
                return
            query = parse_qs(parts.query)
            content_type = self.headers.get("content-type", "")
            objects, refused = read_objects(query, content_type, body, saved_objects=saved_objects)
            if refused is not None:
                self._send(*refused)
            elif saved_objects:
                contract.imported_files.append(body)
                self._send(*handle_import(contract, space, query, objects))
            else:
                self._send(*handle_rules_import(contract, space, objects))


@contextmanager
def kibana_contract_server(
    contract: KibanaContract | None = None,
) -> Iterator[tuple[str, KibanaContract]]:
    """A running server on a free local port: (its URL, its state). Stopped on exit."""
    state = contract if contract is not None else KibanaContract()
    handler = type("Handler", (_Handler,), {"contract": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
