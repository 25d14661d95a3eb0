"""Tamper evidence, the pure core: a hash chain per source stream, signed checkpoints, and
their replay.

``link`` chains events, ``checkpoint`` signs chain heads with a key that Elasticsearch never
sees, ``verify`` replays stored events against both. No state of its own and no I/O beyond
reading a key file (``ChainKey.from_file``); the agent's run loop (``agent.evidence``) keeps
and persists the chains, ``indexer.chain_index`` reads and writes them in Elasticsearch.
"""
