"""Tamper evidence at run time: every I/O of the hash chains, owned by the agent.

``chains`` steps each line into its stream's chain on the reader thread (:class:`Chains`),
keeps each line's place until its checkpoint passes it (:class:`Ledger`) and signs the
persisted heads (:class:`Signer`, with its local NDJSON copy); ``keeper`` binds them to the
registry: the chain head recorded with each acknowledged offset, in the same atomic write
(:class:`ChainedStore`), and the run loop's one handle (:class:`Keeper`); ``keyfile``
follows the signing key file. The pure core they use (links, checkpoints, the verify walk)
is the ``chain`` package.
"""
