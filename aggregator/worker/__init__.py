"""The worker: the data plane for the API's interactive actions (check, discover, previews).

It runs with the pipelines' environment (what run workers get, never the proxy's), resolves `{env: NAME}`
secrets, opens connectors under the egress rules, and answers the proxy over HTTP with a bearer token. See
docs/security.md, "The trust boundary".
"""
