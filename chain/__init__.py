"""Tamper evidence: a hash chain per source stream, signed checkpoints, and their replay.

``link`` chains events as they are read, ``checkpoint`` signs chain heads with a key that
Elasticsearch never sees, ``verify`` replays stored events against both. All pure; the
agent's run loop (``chain.state``) and ``indexer.chain`` do the I/O.
"""
