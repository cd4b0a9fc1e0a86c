"""HTTP and WebSocket plumbing: path normalization, origin checks, forwarding, the upstream pool."""
