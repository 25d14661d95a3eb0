"""Leaf modules shared by every layer: logging and retry policy.

They import nothing from the rest of the project, so the agent, the indexer and the
development tools can all use them without importing each other (the import contracts in
``pyproject.toml`` keep it that way).
"""
