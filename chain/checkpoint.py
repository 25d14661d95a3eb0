"""Signed checkpoints: the heads of the chains, and the events refused on the way, under HMAC.

A hash chain alone proves only that stored events agree with each other: whoever can write
the index can recompute every link after an edit, or cut the tail off. So now and then the
agent signs the heads of its streams with HMAC-SHA256 under a key Elasticsearch never sees,
and stores the signed checkpoint in its own target and in a local file. ``verify`` checks the
signature with the same key, then that the chain passes through every signed head.

A checkpoint also lists the *gaps*: events that have a place in their chain (a sequence
number and a link) but are not in the index, because Elasticsearch refused them for their
content and they went to the dead-letter file. Signed, such an entry cannot be forged to
explain a deletion away.

The key is read from a file (``CHAIN_KEY_FILE``), at least 32 bytes; surrounding whitespace
is ignored, so a base64 line from ``head -c 32 /dev/urandom | base64`` is a good key. Its
*key id* (a digest, not the key) travels with each checkpoint, so ``verify`` can be given
several keys (old and new, across a rotation) and pick the right one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FORMAT: Final = 2
MIN_KEY_BYTES: Final = 32
_BOM: Final = b"\xef\xbb\xbf"
_DIGEST = r"^[0-9a-f]{64}$"


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the file and why."""


class ChainKey:
    """An HMAC key and its public id; the key bytes never leave this object."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise KeyFileError(f"the key has {len(secret)} bytes; at least {MIN_KEY_BYTES} needed")
        self._secret = secret
        self.key_id = hashlib.sha256(b"appmixer-audit.chain.key-id\0" + secret).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ChainKey(key_id={self.key_id!r})"

    @classmethod
    def from_file(cls, path: Path) -> ChainKey:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read the chain key file {path}: {exc.strerror}") from None
        if raw.startswith(_BOM):
            # An editor's byte-order mark is not part of the key, but stripping it silently
            # would make this key differ from the same file saved without one.
            raise KeyFileError(
                f"chain key file {path} starts with a UTF-8 byte-order mark; save it without "
                "one (the mark would otherwise change the key)"
            )
        secret = raw.strip()
        try:
            return cls(secret)
        except KeyFileError as exc:
            raise KeyFileError(f"chain key file {path}: {exc}") from None

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignedHead(_Model):
    """A stream's head when the checkpoint was taken: acknowledged up to ``seq``; and sent
    (not yet acknowledged) up to ``pending_seq``, whose link is ``pending_hash``, when the
    agent, or a run of it that was killed, has lines of the stream in flight."""

    stream: str = Field(min_length=1)
    seq: int = Field(ge=0)
    hash: str = Field(pattern=_DIGEST)
    event_id: str | None = None
    path: str | None = None
    pending_seq: int | None = Field(default=None, ge=1)
    pending_hash: str | None = Field(default=None, pattern=_DIGEST)


class Gap(_Model):
    """An event with a place in its chain that is not in the index, and why."""

    stream: str = Field(min_length=1)
    seq: int = Field(ge=1)
    prev: str = Field(pattern=_DIGEST)
    hash: str = Field(pattern=_DIGEST)
    event_id: str | None = None
    reason: str = ""


class Checkpoint(_Model):
    """What the agent signs; ``signature`` is HMAC-SHA256 over :meth:`payload`.

    Format 2 checkpoints form their own chain per agent: ``epoch`` names the chain (drawn
    when an agent first signs in its state directory), ``seq`` counts 1, 2, 3, ... in it and
    ``prev`` is the :meth:`digest` of the one before (64 zeros for the first), all inside the
    signed body; so a deleted, reordered or substituted checkpoint breaks the next one.
    ``heads`` lists *every* stream the agent knows (not only those that moved), ``interval``
    says how often the agent signs, and ``final`` marks the checkpoint of a clean stop: from
    these ``verify`` bounds what can still be unsigned. A checkpoint with an empty
    ``key_id`` and ``signature`` is unsigned (an agent without a key): it only declares gaps.
    """

    format: int = FORMAT
    host: str
    time: str  # ISO 8601 with a zone: when the agent took it
    key_id: str
    epoch: str = ""
    seq: int = Field(default=0, ge=0)
    prev: str = ""
    interval: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    final: bool = False
    heads: list[SignedHead] = Field(default_factory=list)
    gaps: list[Gap] = Field(default_factory=list)
    signature: str = ""

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value not in (1, FORMAT):
            raise ValueError(f"format {value} is not 1 or {FORMAT}")
        return value

    @field_validator("time")
    @classmethod
    def _zoned_time(cls, value: str) -> str:
        parse_time(value)
        return value

    @property
    def when(self) -> datetime:
        return parse_time(self.time)

    @property
    def chained(self) -> bool:
        """A format 2 checkpoint: it has a place in its agent's checkpoint chain."""
        return self.format >= 2 and self.seq > 0

    @property
    def signed_by_agent(self) -> bool:
        return bool(self.key_id)

    def payload(self) -> bytes:
        """The signed bytes: every field but the signature, sorted compact JSON."""
        leave_out = {"signature"} if self.format >= 2 else {"signature", *_FORMAT_2_ONLY}
        return orjson.dumps(self._body(leave_out), option=orjson.OPT_SORT_KEYS)

    def _body(self, leave_out: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """The fields as JSON; a head's pending fields only when it has them, so heads
        without any serialize (and sign) exactly as before those fields existed."""
        body = self.model_dump(mode="json", exclude=set(leave_out))
        for head in body.get("heads", ()):
            for name in _PENDING:
                if head.get(name) is None:
                    head.pop(name, None)
        return body

    def digest(self) -> str:
        """What the next checkpoint of the same agent names as ``prev``."""
        return hashlib.sha256(self.payload() + b"\0" + self.signature.encode()).hexdigest()

    def signed(self, key: ChainKey) -> Checkpoint:
        if key.key_id != self.key_id:
            raise ValueError("the checkpoint names another key")
        return self.model_copy(update={"signature": key.sign(self.payload())})

    def valid_under(self, key: ChainKey) -> bool:
        return key.key_id == self.key_id and hmac.compare_digest(
            key.sign(self.payload()), self.signature
        )

    @property
    def doc_id(self) -> str:
        """A deterministic document id, so a write retried after a lost answer is a 409."""
        if not self.signature:
            return f"unsigned-{self.host}-{self.epoch}-{self.seq}"[:200]
        return f"{self.key_id}-{self.signature[:40]}"

    def to_document(self) -> dict[str, Any]:
        """The document stored in the checkpoint target (mappings/component/...@chain)."""
        return {
            "@timestamp": self.time,
            "host": {"name": self.host},
            "appmixer": {"checkpoint": self._body()},
        }

    @classmethod
    def from_document(cls, source: Any) -> Checkpoint:
        """Inverse of :meth:`to_document`; ``ValueError`` for anything that is not one,
        whatever its shape (never another exception)."""
        try:
            body = source["appmixer"]["checkpoint"]
            return cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "document"
            raise ValueError(f"malformed checkpoint: {where}: {first['msg']}") from None
        except Exception as exc:  # any shape at all is one finding
            raise ValueError(f"not a checkpoint document ({type(exc).__name__}: {exc})") from None


_FORMAT_2_ONLY: Final = frozenset({"epoch", "seq", "prev", "interval", "final"})
_PENDING: Final = ("pending_seq", "pending_hash")


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or an offset); ``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise ValueError("the time is not a string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"the time {value[:40]!r} is not ISO 8601") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"the time {value[:40]!r} has no zone")
    return when
