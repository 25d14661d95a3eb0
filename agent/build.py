"""Which build of the per-line path runs: the pure-Python source, or the same source compiled.

The per-line path is everything a line goes through between the bytes read and the encoded
bulk body and its settlement: the tailer's line cutting, the normalizer (decode, aliases,
catalog, diff, redaction, ids, the documents), the hash-chain step, the encoding, the
reader's hand-over and the settler's bookkeeping. ``COMPILED_MODULES`` lists those modules;
``setup.py`` compiles them with mypyc when ``APPMIXER_AUDIT_COMPILE=1`` is set at build time
(docs/performance.md). There is one definition of behaviour, the Python source: the compiled
build is that source turned into C, and a differential test holds the two to byte-identical
output.

The build is decided when the package is installed (or by which tree is first on the path),
not by a setting: :func:`build` says which one was loaded, and ``run`` logs it in one line at
start. Never a mix: either every listed module is compiled or none is.
"""

from __future__ import annotations

from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Final, Literal

Build = Literal["compiled", "pure"]

# Modules on the per-line path that mypyc compiles (setup.py reads this tuple without importing
# it). Left out on purpose: indexer.sink (per batch, its time goes to the client it wraps;
# its per-document steps, the documents of a request and their body, are in
# indexer.bulkbody), and glue that runs once (options, settings).
COMPILED_MODULES: Final = (
    "agent.normalize.aliases",
    "agent.normalize.catalog",
    "agent.normalize.decode",
    "agent.normalize.diff",
    "agent.normalize.doc_ids",
    "agent.normalize.document",
    "agent.normalize.fields",
    "agent.normalize.normalizer",
    "agent.normalize.patterns",
    "agent.normalize.precomputed",
    "agent.normalize.redact",
    "agent.normalize.related",
    "agent.normalize.result",
    "agent.normalize.roles",
    "agent.normalize.timestamps",
    "agent.files._inspect",
    "agent.files._tracked",
    "agent.files.tailer",
    "agent.evidence.chains",
    "agent.items",
    "agent.acks",
    "agent.batch",
    "agent.reader",
    "agent.settler",
    "chain.link",
    "indexer.bulkbody",
    "indexer.outcomes",
    "common.value",
)


def is_extension(module_name: str) -> bool:
    """Whether the module is loaded from an extension module (compiled) rather than source."""
    path = getattr(import_module(module_name), "__file__", None) or ""
    return path.endswith(tuple(EXTENSION_SUFFIXES))


def build() -> Build:
    """The build of the per-line path that this interpreter loads."""
    return "compiled" if is_extension("agent.reader") else "pure"


def builds() -> set[bool]:
    """For each listed module, whether it is compiled: ``{True}`` or ``{False}``, never both."""
    return {is_extension(name) for name in COMPILED_MODULES}
