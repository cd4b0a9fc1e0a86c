"""`aggregator metrics serve`: the Dagster-derived metrics on their own port (the proxy also serves /metrics)."""

from __future__ import annotations

import click


def register_commands(main: click.Group) -> None:
    main.add_command(metrics)


@click.group()
def metrics() -> None:
    """Prometheus metrics read from the Dagster instance (DAGSTER_HOME)."""


@metrics.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=9464, show_default=True, type=int, help="Port of the /metrics endpoint.")
def serve(host: str, port: int) -> None:
    """Serve /metrics until interrupted."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import dagster as dg

    from aggregator.metrics.exposition import CONTENT_TYPE, Exposition

    exposition = Exposition(dg.DagsterInstance.get(), include_proxy=False)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = exposition.render()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    click.echo(f"serving Prometheus metrics on http://{host}:{port}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
