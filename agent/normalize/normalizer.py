"""The Normalizer: one input line in, one typed outcome out, never an exception.

The steps, each a small pure function elsewhere in this package: decode the line, unwrap a
logger envelope, resolve field aliases, parse the time, classify the action, diff the states
(or take the service's own diff), redact, derive the id, lay out the documents. Everything
that can be compiled or checked once (patterns, caps) is, in ``__init__``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from agent.normalize import aliases as A
from agent.normalize import fields
from agent.normalize.catalog import CatalogEntry, classify, ecs_type_for
from agent.normalize.decode import DecodeError, decode_line
from agent.normalize.diff import MISSING, Diff, Differ
from agent.normalize.doc_ids import derived, from_input
from agent.normalize.document import Assembler
from agent.normalize.options import NormalizeOptions
from agent.normalize.precomputed import from_precomputed
from agent.normalize.redact import Redactor
from agent.normalize.result import Normalized, Outcome, Rejected, Skipped, Source
from agent.normalize.timestamps import TimeError, parse_time
from common.stage import Stage

_KIND_NAMES = {dict: "an object", list: "an array", bool: "a boolean", int: "a number"}
_TIME_NAMES = ", ".join(A.dotted(path) for path in A.TIME)
_ACTION_NAMES = ", ".join(A.dotted(path) for path in A.ACTION)
_ID_CHARS: Final = 1024  # before hashing: ids.from_input bounds the bytes


def _check(options: NormalizeOptions) -> None:
    for name in ("diff_max_depth", "diff_max_changes", "diff_max_value_chars"):
        value = getattr(options, name)
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not options.envelope_key:
        raise ValueError("envelope_key must not be empty")
    if not options.host_name:
        raise ValueError("host_name must not be empty")


class Normalizer:
    """Configured once (patterns compiled, caps checked), then called for every line."""

    def __init__(self, options: NormalizeOptions | None = None) -> None:
        self.options = options if options is not None else NormalizeOptions()
        _check(self.options)
        opts = self.options
        self._redactor = Redactor(
            opts.redact_keys,
            opts.redact_values,
            max_depth=opts.diff_max_depth,
            max_chars=opts.diff_max_value_chars,
        )
        self._differ = Differ(
            opts.diff_max_depth,
            opts.diff_max_changes,
            self._redactor.secret_key,
            self._redactor.secret_pair,
        )
        self._assembler = Assembler(opts.namespace, self._redactor)
        self._envelope_key = opts.envelope_key
        self._stdin = Source(path="-", file_id="stdin", offset=0, host=opts.host_name)

    def __call__(self, line: bytes, source: Source | None = None) -> Outcome:
        # A line's ending is not part of it: the derived id must not depend on whether the
        # caller kept "\n" or "\r\n" (the tailer and the normalize command strip both).
        if line[-1:] == b"\n":
            line = line[:-2] if line[-2:] == b"\r\n" else line[:-1]
        try:
            try:
                decoded = decode_line(line)
            except DecodeError as exc:
                return Rejected(str(exc), stage=Stage.DECODE)
            if decoded is None:
                return Skipped("empty line")
            record, prefix, envelope_time = A.unwrap(decoded, self._envelope_key)
            values, ranks = A.resolve(record)
            entry = _classify(record, prefix, values, ranks)
            if not isinstance(entry, CatalogEntry):
                return entry
            timestamp = _timestamp(prefix, values, ranks, envelope_time)
            if isinstance(timestamp, Rejected):
                return timestamp
            return self._normalized(
                line,
                self._stdin if source is None else source,
                record=record,
                values=values,
                entry=entry,
                timestamp=timestamp,
            )
        # The contract: any bytes give an outcome, never a raise. (Not named ``exc``: one
        # name would be one variable for both handlers, typed by the first, DecodeError.)
        except Exception as error:
            return Rejected(f"cannot normalize this line: {type(error).__name__}: {error}")

    def _normalized(
        self,
        line: bytes,
        source: Source,
        *,
        record: dict[str, Any],
        values: list[Any],
        entry: CatalogEntry,
        timestamp: str,
    ) -> Normalized:
        raw_id = values[A.M_ID]
        event_id = None if raw_id is None else fields.text(raw_id, _ID_CHARS)
        event_id = (
            from_input(event_id)
            if event_id is not None
            else derived(source.file_id, source.offset, line)
        )
        raw_type = values[A.M_TYPE]
        audit_type = None if raw_type is None else fields.audit_type(raw_type)
        if audit_type is not None and audit_type != entry.audit_type and not entry.catalog:
            entry = replace(entry, audit_type=audit_type, ecs_type=ecs_type_for(audit_type))
        outcome = entry.outcome
        if outcome is None:
            raw_outcome = values[A.M_OUTCOME]
            outcome = (None if raw_outcome is None else fields.outcome(raw_outcome)) or "success"

        before = record.get("before", MISSING)
        after = record.get("after", MISSING)
        before = MISSING if before is None else before
        after = MISSING if after is None else after
        precomputed = values[A.M_DIFF]
        if (before is MISSING or after is MISSING) and precomputed is not None:
            diff = from_precomputed(
                precomputed, self.options.diff_max_changes, self._redactor.secret_key
            )
        elif before is MISSING and after is MISSING:
            diff = Diff()
        else:
            diff = self._differ.diff(before, after)
        data = values[A.M_DATA]
        return self._assembler.build(
            event_id=event_id,
            timestamp=timestamp,
            entry=entry,
            audit_type=audit_type or entry.audit_type,
            outcome=outcome,
            values=values,
            source=source,
            diff=diff,
            states=(before, after, MISSING if data is None else data),
        )


def _classify(
    record: dict[str, Any], prefix: str, values: list[Any], ranks: list[int]
) -> CatalogEntry | Outcome:
    """The catalog entry for the record's action, or why there is none to use."""
    action = values[A.M_ACTION]
    if action is None:
        if prefix or A.looks_like_audit(record):
            return Rejected(
                f"missing action: none of {_ACTION_NAMES} is present", prefix + "action"
            )
        return Skipped("not an audit record: no action field")
    if type(action) is not str:
        name = prefix + A.alias(A.M_ACTION, ranks[A.M_ACTION])
        kind = _KIND_NAMES.get(type(action), "a number")
        return Rejected(
            f"field '{name}': expected an action name or code as text, got {kind}", name
        )
    entry = classify(action)
    if not entry.message:
        name = prefix + A.alias(A.M_ACTION, ranks[A.M_ACTION])
        return Rejected(f"field '{name}': the action is blank", name)
    if not entry.catalog and not prefix and _log_line(record, values):
        return Skipped("not an audit record: a log line (a level, no actor, resource or change)")
    return entry


# What an audit record names: its id, an acting or target user, a flow, an entity, a tenant.
_WHO_OR_WHAT: Final = (A.M_ID, *range(A.M_USER_ID, A.M_TENANT_ID + 1))


def _log_line(record: dict[str, Any], values: list[Any]) -> bool:
    """Another program's log line in an audit file (``{"event": "run_finished", "level":
    "info", "timestamp": ...}``), not an audit event of a newer Appmixer.

    Asked only for an action outside the catalog, of a bare record (an enveloped one is an
    audit record by its place). A logger's line has a ``level``; an audit record names its
    id or who did what to what: a user, a flow, an entity or a tenant, or a change
    (``before``, ``after``, ``diff``), or its creation time (``created``, ``createdAt``). A
    line with a level and none of those is a log line; anything else is kept.
    """
    if "level" not in record or A.looks_like_audit(record):
        return False
    return all(values[meaning] is None for meaning in _WHO_OR_WHAT)


def _timestamp(
    prefix: str, values: list[Any], ranks: list[int], envelope_time: Any
) -> str | Rejected:
    """The event time in UTC, from the record or else its envelope, or why it is unusable."""
    raw = values[A.M_TIME]
    if raw is None:
        if envelope_time is None:
            reason = f"missing event time: none of {_TIME_NAMES} is present"
            return Rejected(reason, prefix + "created")
        raw = envelope_time
    try:
        return parse_time(raw)
    except TimeError as exc:
        name = "time" if values[A.M_TIME] is None else prefix + A.alias(A.M_TIME, ranks[A.M_TIME])
        return Rejected(f"field '{name}': {exc}", name)
