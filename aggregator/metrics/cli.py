"""`aggregator metrics serve`: the Dagster-derived metrics on their own port (the proxy also serves /metrics)."""

from __future__ import annotations

import click


def register_commands(main: click.Group) -> None:
    main.add_command(metrics)


@click.group()
def metrics() -> None:
    """Prometheus metrics read from the Dagster instance (DAGSTER_HOME, default $AGGREGATOR_HOME/dagster)."""


@metrics.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=9464, show_default=True, type=int, help="Port of the /metrics endpoint.")
def serve(host: str, port: int) -> None:
    """Serve /metrics until SIGTERM or SIGINT."""
    import signal
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import FrameType

    from aggregator.dagster_instance import open_instance
    from aggregator.metrics.exposition import CONTENT_TYPE, Exposition

    instance = open_instance()
    exposition = Exposition(instance, include_proxy=False)
    # Before the port opens: a scrape never sees a count below the previous process's (docs/operations.md).
    exposition.collector.catch_up()

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
    server.daemon_threads = True  # a scrape in flight does not hold up the exit

    def stop(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this (the main) thread: ask from another.
        click.echo(f"{signal.Signals(signum).name}: stopping", err=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Installed explicitly: a process started in the background by a shell inherits SIGINT ignored, and
    # SIGTERM (what supervisors and `kill` send) would otherwise end it without closing the instance.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    click.echo(f"serving Prometheus metrics on http://{host}:{port}/metrics")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        instance.dispose()
