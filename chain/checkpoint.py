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
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT: Final = 1
MIN_KEY_BYTES: Final = 32
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
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise KeyFileError(f"cannot read the chain key file {path}: {exc.strerror}") from None
        try:
            return cls(secret)
        except KeyFileError as exc:
            raise KeyFileError(f"chain key file {path}: {exc}") from None

    def sign(self, payload: bytes) -> str:
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignedHead(_Model):
    """A stream's head when the checkpoint was taken."""

    stream: str = Field(min_length=1)
    seq: int = Field(ge=0)
    hash: str = Field(pattern=_DIGEST)
    event_id: str | None = None
    path: str | None = None


class Gap(_Model):
    """An event with a place in its chain that is not in the index, and why."""

    stream: str = Field(min_length=1)
    seq: int = Field(ge=1)
    prev: str = Field(pattern=_DIGEST)
    hash: str = Field(pattern=_DIGEST)
    event_id: str | None = None
    reason: str = ""


class Checkpoint(_Model):
    """What the agent signs; ``signature`` is HMAC-SHA256 over :meth:`payload`."""

    format: int = FORMAT
    host: str
    time: str  # ISO 8601, UTC: when the agent took it
    key_id: str
    heads: list[SignedHead] = Field(default_factory=list)
    gaps: list[Gap] = Field(default_factory=list)
    signature: str = ""

    def payload(self) -> bytes:
        """The signed bytes: every field but the signature, sorted compact JSON."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

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
        return f"{self.key_id}-{self.signature[:40]}"

    def to_document(self) -> dict[str, Any]:
        """The document stored in the checkpoint target (mappings/component/...@chain)."""
        return {
            "@timestamp": self.time,
            "host": {"name": self.host},
            "appmixer": {"checkpoint": self.model_dump(mode="json")},
        }

    @classmethod
    def from_document(cls, source: Any) -> Checkpoint:
        """Inverse of :meth:`to_document`; ``ValueError`` when it is not a checkpoint."""
        try:
            body = source["appmixer"]["checkpoint"]
            return cls.model_validate(body)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a checkpoint document ({exc})") from None
        except ValidationError as exc:
            raise ValueError(f"malformed checkpoint: {exc.errors()[0]['msg']}") from None
