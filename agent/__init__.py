"""The appmixer-audit sidecar: tails Appmixer audit logs and ships them to Elasticsearch."""

__version__ = "0.1.0"
