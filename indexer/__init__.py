"""Everything that talks to Elasticsearch: clients, the bulk sink, setup, search, dev nodes."""
