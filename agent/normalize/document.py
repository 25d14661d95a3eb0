"""Assembling the ECS event document and its companion change documents.

Field names are the contract with the mappings (docs/index.md "Fields", docs/siem.md);
``tests/unit/document_models.py`` holds the same shape as pydantic models. Fields without
a value are left out, never ``null`` or empty.

``event.hash`` is the SHA-256 (hex) of the document serialized with sorted keys and no
whitespace (orjson's compact form, UTF-8), without ``event.hash``, ``event.ingested`` and
``log.file.path`` (where the line was read: a rename changes it, not the event, and a line
read again after a rotation must hash the same). The agent's chain step (``chain``)
then replaces it with the chain link over this digest.

Built in one straight pass, without intermediate objects: this is the hot path of the
agent, and every attribute and call shows in the events-per-second figure.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from agent import __version__
from agent.normalize import aliases as A
from agent.normalize.catalog import CatalogEntry
from agent.normalize.diff import MISSING, Change, Diff
from agent.normalize.doc_ids import change_id
from agent.normalize.fields import ip, text
from agent.normalize.redact import REDACTED, Redactor
from agent.normalize.related import related_ids
from agent.normalize.result import Normalized, Source
from agent.normalize.roles import GRANTING_ACTIONS, granted_roles

ECS_VERSION: Final = "9.4.0"  # the @elastic/ecs release the conformance test checks against
DATASET: Final = "appmixer.audit"
CHANGES_DATASET: Final = "appmixer.audit_changes"
# A change document is context for its event, not an event of its own: ECS's ``enrichment``
# kind, and no category, type or outcome, so a SIEM rule over logs-* never counts it.
CHANGES_KIND: Final = "enrichment"
AGENT_TYPE: Final = "appmixer-audit"
FIELD_CHARS: Final = 1024  # keyword fields: Elasticsearch ignores longer ones anyway (ignore_above)
_SORTED: Final = orjson.OPT_SORT_KEYS
# Copied for each event: the constructor looks the algorithm up in OpenSSL on every call.
_SHA256: Final = hashlib.sha256()


class Assembler:
    """Lays out documents for one namespace; redaction applied on the way out."""

    def __init__(self, namespace: str, redactor: Redactor) -> None:
        self.namespace = namespace
        self.redactor = redactor
        self._hidden = redactor.text(REDACTED)  # what a hidden value renders as (capped too)

    def render(
        self, change: Change, old_clean: bool = False, new_clean: bool = False
    ) -> dict[str, Any]:
        """A change as stored: path, op, and old/new as text (strings as-is, else JSON).

        ``old_clean``/``new_clean`` say that the old/new values are known to come out of
        cleaning unchanged (see ``build``), so they are not walked again."""
        rendered: dict[str, Any] = {"path": self.redactor.text(change.path), "op": change.op}
        if change.old is not MISSING:
            rendered["old"] = self._value_text(change.old, change.secret, old_clean)
        if change.new is not MISSING:
            rendered["new"] = self._value_text(change.new, change.secret, new_clean)
        return rendered

    def _value_text(self, value: Any, secret: bool, clean: bool) -> str:
        if value is None:
            return "null"
        kind = type(value)
        if kind is bool:
            return "true" if value else "false"
        if secret:
            return self._hidden
        redactor = self.redactor
        if kind is str:
            return redactor.text(value)
        return redactor.cap(orjson.dumps(value if clean else redactor.clean(value)).decode())

    def free_text(self, value: Any) -> str | None:
        """Text a person wrote (names, reasons, user agents): scrubbed of credentials too."""
        if value is None:
            return None
        shown = text(value, FIELD_CHARS)
        return None if shown is None else self.redactor.text(shown)

    def build(
        self,
        *,
        event_id: str,
        timestamp: str,
        entry: CatalogEntry,
        audit_type: str,
        outcome: str,
        values: list[Any],
        source: Source,
        diff: Diff,
        states: tuple[Any, Any, Any],
    ) -> Normalized:
        """The event document and its change documents, from resolved values (see aliases)."""
        event: dict[str, Any] = {
            "id": event_id,
            "kind": "event",
            "category": list(entry.category),
            "type": list(entry.ecs_type),
            "outcome": outcome,
            "action": entry.code,
            "dataset": DATASET,
            "module": "appmixer",
        }
        raw = values[A.M_REASON]
        if raw is not None and (reason := self.free_text(raw)) is not None:
            event["reason"] = reason
        doc: dict[str, Any] = {"@timestamp": timestamp, "event": event, "message": entry.message}
        refs = _Refs(values, self)
        self._people(doc, values, refs)
        before, after, data = states
        if entry.code in GRANTING_ACTIONS:
            roles = granted_roles(entry.code, before, after, diff.changes)
            if roles:  # ECS user.changes: what the event changed of the user acted on
                shown = [self.redactor.text(role) for role in roles]
                doc.setdefault("user", {})["changes"] = {"roles": shown}
        redactor = self.redactor  # called directly: a bound method would be called as Python
        stored = (
            before if before is MISSING else redactor.clean(before),
            after if after is MISSING else redactor.clean(after),
            data if data is MISSING else redactor.clean(data),
        )
        changes = []
        if diff.changes:
            # A computed diff's values are parts of the states. A state that comes out of
            # cleaning as the very same object holds nothing to hide, cut or mark, so neither
            # does any part of it, even cleaned on its own (same verdicts, less depth, fewer
            # items): its values are rendered without a second walk.
            old_clean = diff.computed and before is not MISSING and stored[0] is before
            new_clean = diff.computed and after is not MISSING and stored[1] is after
            changes = [self.render(change, old_clean, new_clean) for change in diff.changes]
        doc["appmixer"] = self._appmixer(
            _audit(entry, audit_type, diff, changes, stored), refs, stored
        )
        if refs.tenant_id is not None:  # ECS readers look for the tenant here
            doc["organization"] = {"id": refs.tenant_id}
        log = doc["log"] = {"offset": source.offset}
        doc["host"] = {"name": source.host}
        doc["agent"] = {"type": AGENT_TYPE, "version": __version__}
        doc["ecs"] = {"version": ECS_VERSION}
        doc["data_stream"] = {"type": "logs", "dataset": DATASET, "namespace": self.namespace}
        digest = _SHA256.copy()
        digest.update(orjson.dumps(doc, option=_SORTED))
        event["hash"] = digest.hexdigest()
        log["file"] = {"path": source.path}
        if not changes:
            return Normalized(event_id, doc, [])
        head = (event_id, entry.code, timestamp, entry.message, self.namespace)
        return Normalized(event_id, doc, _change_docs(head, audit_type, changes, refs))

    def _people(self, doc: dict[str, Any], values: list[Any], refs: _Refs) -> None:
        """``user.*`` (actor and target), ``source.ip``, ``user_agent``, ``related.*``."""
        user, related = self._users(values, refs)
        if user:
            doc["user"] = user
        raw = values[A.M_IP]
        source_ip = None if raw is None else ip(raw)
        if source_ip is not None:
            doc["source"] = {"ip": source_ip}
        raw = values[A.M_USER_AGENT]
        if raw is not None and (agent := self.free_text(raw)) is not None:
            doc["user_agent"] = {"original": agent}
        if related:
            if source_ip is not None:
                doc["related"] = {"user": related, "ip": [source_ip]}
            else:
                doc["related"] = {"user": related}
        elif source_ip is not None:
            doc["related"] = {"ip": [source_ip]}

    def _users(self, values: list[Any], refs: _Refs) -> tuple[dict[str, Any], list[str]]:
        """``user`` (the actor, with ``target`` inside) and the distinct values for
        ``related.user``, in order."""
        user: dict[str, Any] = {}
        related: list[str] = []
        if refs.user_id is not None:
            user["id"] = refs.user_id
            related.append(refs.user_id)
        if refs.user_email is not None:
            user["email"] = refs.user_email
            if refs.user_email not in related:
                related.append(refs.user_email)
        raw = values[A.M_USER_NAME]
        if raw is not None and (name := self.free_text(raw)) is not None:
            user["name"] = name
            if name not in related:
                related.append(name)
        if refs.entity_type is not None or (
            values[A.M_TARGET_ID] is not None
            or values[A.M_TARGET_EMAIL] is not None
            or values[A.M_TARGET_NAME] is not None
        ):
            target = self._target(values, refs)
            if target:
                user["target"] = target
                for value in target.values():
                    if value not in related:
                        related.append(value)
        return user, related

    def _appmixer(
        self, audit: dict[str, Any], refs: _Refs, states: tuple[Any, Any, Any]
    ) -> dict[str, Any]:
        appmixer: dict[str, Any] = {"audit": audit}
        own: list[str] = []
        if refs.flow_id is not None:
            appmixer["flow"] = {"id": refs.flow_id}
            own.append(refs.flow_id)
        entity = refs.entity(with_name=True)
        if entity:
            appmixer["entity"] = entity
            if refs.entity_id is not None and refs.entity_id not in own:
                own.append(refs.entity_id)
        if refs.tenant_id is not None:
            appmixer["tenant"] = {"id": refs.tenant_id}
        ids = related_ids(own, states)
        if ids:
            appmixer["related"] = {"id": ids}
        return appmixer

    def _target(self, values: list[Any], refs: _Refs) -> dict[str, str]:
        """The user acted on: explicit target fields first, else an entity of type user."""
        target: dict[str, str] = {}
        raw_id, raw_email = values[A.M_TARGET_ID], values[A.M_TARGET_EMAIL]
        raw_name = values[A.M_TARGET_NAME]
        target_id = None if raw_id is None else text(raw_id, FIELD_CHARS)
        target_email = None if raw_email is None else text(raw_email, FIELD_CHARS)
        target_name = None if raw_name is None else self.free_text(raw_name)
        if refs.entity_type is not None and refs.entity_type.lower() == "user":
            target_id = target_id or refs.entity_id
            name = refs.entity_name
            if name is not None and target_name is None and "@" not in name:
                target_name = name
            elif name is not None and target_email is None and "@" in name:
                target_email = name
        for key, value in (("id", target_id), ("email", target_email), ("name", target_name)):
            if value is not None:
                target[key] = value
        return target


def _audit(
    entry: CatalogEntry,
    audit_type: str,
    diff: Diff,
    changes: list[dict[str, Any]],
    states: tuple[Any, Any, Any],
) -> dict[str, Any]:
    """``appmixer.audit``: the classification, the rendered diff and the stored (cleaned)
    states."""
    audit: dict[str, Any] = {"type": audit_type}
    if entry.group is not None:
        audit["group"] = entry.group
    audit["catalog"] = entry.catalog
    if changes:
        audit["changes"] = changes
    audit["changes_count"] = diff.count
    audit["changes_truncated"] = diff.truncated
    before, after, data = states
    if before is not MISSING:
        audit["before"] = before
    if after is not MISSING:
        audit["after"] = after
    if data is not MISSING:
        audit["data"] = data
    return audit


def _change_docs(
    head: tuple[str, str, str, str, str],
    audit_type: str,
    changes: list[dict[str, Any]],
    refs: _Refs,
) -> list[tuple[str, dict[str, Any]]]:
    """One document per change, for the diff table (Kibana flattens arrays of objects).

    ``head`` is what the event document holds too (its id, action, time, message and
    namespace), passed as typed values rather than read back out of it."""
    event_id, action, timestamp, message, namespace = head
    user = {"id": refs.user_id, "email": refs.user_email}
    if refs.user_id is None or refs.user_email is None:
        user = {key: value for key, value in user.items() if value is not None}
    entity = refs.entity(with_name=False)
    flow_id = refs.flow_id
    docs = []
    for index, change in enumerate(changes):
        # Fresh objects per document: a sink that stamps one document touches only it.
        change_doc: dict[str, Any] = {
            "@timestamp": timestamp,
            "event": {
                "id": event_id,
                "kind": CHANGES_KIND,
                "action": action,
                "dataset": CHANGES_DATASET,
            },
            "message": message,
        }
        if user:
            change_doc["user"] = user.copy()
        appmixer: dict[str, Any] = {"audit": {"type": audit_type}}
        if flow_id is not None:
            appmixer["flow"] = {"id": flow_id}
        if entity:
            appmixer["entity"] = entity.copy()
        appmixer["change"] = {"index": index, **change}
        change_doc["appmixer"] = appmixer
        change_doc["data_stream"] = {
            "type": "logs",
            "dataset": CHANGES_DATASET,
            "namespace": namespace,
        }
        docs.append((change_id(event_id, index), change_doc))
    return docs


class _Refs:
    """The keyword references of one record (ids, emails, names), coerced once."""

    __slots__ = (
        "entity_id",
        "entity_name",
        "entity_type",
        "flow_id",
        "tenant_id",
        "user_email",
        "user_id",
    )

    def __init__(self, values: list[Any], assembler: Assembler) -> None:
        cap = FIELD_CHARS
        raw = values[A.M_USER_ID]
        self.user_id = None if raw is None else text(raw, cap)
        raw = values[A.M_USER_EMAIL]
        self.user_email = None if raw is None else text(raw, cap)
        raw = values[A.M_FLOW_ID]
        self.flow_id = None if raw is None else text(raw, cap)
        raw = values[A.M_TENANT_ID]
        self.tenant_id = None if raw is None else text(raw, cap)
        raw = values[A.M_ENTITY_TYPE]
        self.entity_type = None if raw is None else text(raw, cap)
        raw = values[A.M_ENTITY_ID]
        self.entity_id = None if raw is None else text(raw, cap)
        raw = values[A.M_ENTITY_NAME]
        self.entity_name = None if raw is None else assembler.free_text(raw)

    def entity(self, *, with_name: bool) -> dict[str, str]:
        entity: dict[str, str] = {}
        if self.entity_type is not None:
            entity["type"] = self.entity_type
        if self.entity_id is not None:
            entity["id"] = self.entity_id
        if with_name and self.entity_name is not None:
            entity["name"] = self.entity_name
        return entity
