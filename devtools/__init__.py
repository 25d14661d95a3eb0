"""Development tools shipped with the package, apart from the runtime path.

The local Elasticsearch node (``dev-es``) and the audit-log simulator (``simulate``) serve
demos, tests and benchmarks; the agent never imports them.
"""
