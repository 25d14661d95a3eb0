"""The peer shipper: rsyslog (imfile + omelasticsearch, Debian's packages) in a sandbox.

Each run gets its own config file, work directory (imfile state, queues) and pid file, and
loads only the modules named here (no imuxsock, no imklog), so the system's rsyslog, if any,
is never touched. Two shapes, as in the targets of docs/performance.md:

- ``docs``: the documents the agent sends for the same lines (``bench/documents.py``),
  one envelope a line (``{"_index", "_id", "_source"}``); ``mmjsonparse`` parses it, the
  index comes from ``_index``, the bulk id from ``_id``, the body is ``_source``, every
  action a ``create``.
  The same documents into the same targets, so both shippers pay the same node.
- ``raw``: each line wrapped as ``message`` in one small document: the cheapest possible
  shipping, a ceiling for what a file-to-index pipe costs.

Both read with one ruleset queue that hands omelasticsearch batches of ``batch`` messages,
the agent's default batch size, so each bulk request is of the same order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

RSYSLOGD = "/usr/sbin/rsyslogd"
PACKAGES = ("rsyslog", "rsyslog-elasticsearch")


def available() -> str | None:
    """None when rsyslogd and its Elasticsearch output are installed, else what is missing."""
    if shutil.which("rsyslogd") is None and not Path(RSYSLOGD).exists():
        return "rsyslogd is not installed (Debian: apt-get install " + " ".join(PACKAGES) + ")"
    modules = [Path(p) / "omelasticsearch.so" for p in _module_dirs()]
    if not any(module.exists() for module in modules):
        return "omelasticsearch is not installed (Debian: apt-get install rsyslog-elasticsearch)"
    return None


def _module_dirs() -> list[str]:
    return ["/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog",
            "/usr/lib/rsyslog", "/usr/lib64/rsyslog"]  # fmt: skip


def version() -> str:
    import subprocess

    try:
        out = subprocess.run([RSYSLOGD, "-v"], capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.split()[1] if len(first.split()) > 1 else "unknown"


def config(
    shape: str, source: Path, workdir: Path, port: int, *, raw_index: str, batch: int = 2000
) -> str:
    """An rsyslog configuration (RainerScript) for one run of one shape."""
    common = f'''
global(workDirectory="{workdir}" maxMessageSize="4m")
module(load="imfile" mode="inotify")
module(load="omelasticsearch")
input(type="imfile" file="{source}" tag="bench" ruleset="ship" freshStartTail="off"
      addMetadata="off" reopenOnTruncate="on")
'''
    ship = (
        f'server="127.0.0.1" serverport="{port}" esVersion.major="8" bulkmode="on" '
        f'maxbytes="100m" errorFile="{workdir}/errors.json" action.resumeRetryCount="-1"'
    )
    queue = (
        f'queue.type="LinkedList" queue.size="{batch * 20}" queue.dequeueBatchSize="{batch}" '
        'queue.workerThreads="1"'
    )
    if shape == "docs":
        return (
            common
            + f"""
module(load="mmjsonparse")
template(name="bench_index" type="list") {{ property(name="$!_index") }}
template(name="bench_id" type="list") {{ property(name="$!_id") }}
template(name="bench_doc" type="subtree" subtree="$!_source")
ruleset(name="ship" {queue}) {{
  action(type="mmjsonparse" cookie="" useRawMsg="on")
  action(type="omelasticsearch" {ship} template="bench_doc"
         searchIndex="bench_index" dynSearchIndex="on" bulkid="bench_id" dynbulkid="on"
         writeoperation="create")
}}
"""
        )
    if shape == "raw":
        return (
            common
            + f'''
template(name="bench_raw" type="string" string="{{\\"message\\":\\"%msg:::json%\\"}}")
ruleset(name="ship" {queue}) {{
  action(type="omelasticsearch" {ship} template="bench_raw" searchIndex="{raw_index}")
}}
'''
        )
    raise ValueError(f"unknown rsyslog shape {shape!r}")


def command(config_file: Path, workdir: Path) -> list[str]:
    """rsyslogd in the foreground, with its own config and pid file."""
    return [RSYSLOGD, "-n", "-f", str(config_file), "-i", str(workdir / "rsyslogd.pid")]


# The raw row's index: one text field, nothing else (the cheapest document to index).
RAW_INDEX_BODY = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
    "mappings": {"dynamic": False, "properties": {"message": {"type": "text"}}},
}
