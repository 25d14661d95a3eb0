"""Everything that talks to Elasticsearch: clients, the bulk sink, setup, search, dev nodes."""

from common.imports import not_importable

# The transport imports a node class for every HTTP library it finds installed; the client
# here uses urllib3's. requests comes with the development tools (docker), not the image:
# not importing it saves about 30 ms of CPU and 4 MiB at every start that uses the client.
with not_importable("requests", "aiohttp", "httpx"):
    import elastic_transport  # noqa: F401
