"""`GET /api/events` through the real proxy in front of the real webserver: runs (launched by the webserver,
or executed against the same Dagster instance) reach listening clients, a scoped grant's stream carries only
its pipelines, Last-Event-ID resumes, the stream caps answer 429 and a client that goes away frees its slot."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from aggregator.proxy.api import live_events
from aggregator.proxy.api.live_events import EventHub
from aggregator.proxy.policy.rbac import Role
from aggregator_tests.proxy.api.conftest import ApiStack, event_budgets, start_api_proxy
from aggregator_tests.proxy.conftest import PASSWORD, RunningProxy

TIMEOUT_S = 120.0


class Listener:
    """One SSE client in a thread: parsed events as they arrive, comments counted."""

    def __init__(self, stack: ApiStack | RunningProxy, who: str, params: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None, token: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.ended = False
        self._cond = threading.Condition()
        self._client = httpx.Client(base_url=stack.url, timeout=httpx.Timeout(30, read=None))
        self._cm = self._client.stream("GET", "/api/events", params=params or {},
                                       headers={"Authorization": f"Bearer {token or stack.tokens[who]}",
                                                **(headers or {})})
        self.response = self._cm.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.response.status_code == 200:
            self._thread.start()
        else:
            self.response.read()

    def _read(self) -> None:
        frame: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if "data" in frame:
                        with self._cond:
                            self.events.append({"id": frame.get("id"), "event": frame.get("event", "message"),
                                                "data": json.loads(frame["data"])})
                            self._cond.notify_all()
                    frame = {}
                elif line.startswith(":"):
                    with self._cond:
                        self.comments += 1
                        self._cond.notify_all()
                else:
                    key, _, value = line.partition(":")
                    frame[key] = value.removeprefix(" ")
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass  # closed by the test
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait(self, found: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        with self._cond:
            if not self._cond.wait_for(lambda: found(self.events) or self.ended, TIMEOUT_S):
                raise AssertionError(f"no {what} within {TIMEOUT_S} s; got {self.events[-5:]}")
            assert found(self.events), f"stream ended before {what}; got {self.events[-5:]}"
            return list(self.events)

    def close(self) -> None:
        self.response.close()
        self._cm.__exit__(None, None, None)
        self._client.close()
        if self._thread.is_alive():
            self._thread.join(30)


@pytest.fixture
def hub(api_stack: ApiStack) -> Iterator[EventHub]:
    """The proxy's hub with small budgets and a fast poll for these tests."""
    with event_budgets(api_stack, events_per_user=2, events_total=3, events_heartbeat_s=0.5,
                       events_poll_s=0.2) as hub:
        yield hub


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    opened: list[Listener] = []
    try:
        yield opened
    finally:
        for listener in opened:
            listener.close()


def run_job(stack: ApiStack, pipeline: str | None, *, fail: bool = False, say: str = "live marker") -> str:
    """A real run in the webserver's own Dagster instance, tagged as a pipeline's run (or no pipeline's)."""

    @dg.op
    # unannotated: Dagster rejects the string annotation `from __future__ import annotations` makes
    def speak(context) -> None:
        context.log.info(say)
        if fail:
            raise dg.Failure(description=f"failing on purpose: {say}")

    job = dg.GraphDefinition(name=f"{pipeline or 'adhoc'}_live_job", node_defs=[speak]).to_job()
    with dg.DagsterInstance.from_config(str(Path(stack.home) / "dagster")) as instance:
        tags = {"aggregator/pipeline": pipeline} if pipeline else {}
        return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).run_id


def finished(run_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(e["event"] == "run" and e["data"]["run_id"] == run_id
                              and e["data"]["status"] in ("SUCCESS", "FAILURE") for e in events)


def test_a_run_launched_through_the_proxy_arrives_on_the_stream(api_stack: ApiStack, hub: EventHub,
                                                                  listeners: list[Listener]) -> None:
    """The run fails on purpose (its CSV export is moved away): it writes nothing into the warehouse the other
    tests of this session read."""
    listener = Listener(api_stack, "viewer")
    listeners.append(listener)
    assert listener.response.status_code == 200
    assert listener.response.headers["content-type"].startswith("text/event-stream")
    source = api_stack.specs_dir / "data" / "sales_orders.csv"
    aside = source.with_suffix(".aside")
    source.rename(aside)
    try:
        with api_stack.client("launcher") as client:
            launched = client.post("/api/pipelines/sales/trigger")
        assert launched.status_code == 201, launched.text
        run_id = launched.json()["run_id"]
        events = listener.wait(finished(run_id), f"the end of run {run_id}")
    finally:
        aside.rename(source)
    statuses = [e["data"]["status"] for e in events if e["event"] == "run" and e["data"]["run_id"] == run_id]
    assert statuses[0] in ("QUEUED", "STARTING") and statuses[-1] == "FAILURE", statuses
    first = next(e for e in events if e["event"] == "run" and e["data"]["run_id"] == run_id)
    assert first["data"]["pipeline"] == "sales" and first["data"]["job_name"] == "sales_job"
    assert first["id"], "every event has an id to resume from"


def test_a_failure_and_its_log_lines_arrive_filtered_like_log_search(api_stack: ApiStack, hub: EventHub,
                                                                      listeners: list[Listener]) -> None:
    marker = f"tail-{uuid.uuid4().hex[:8]}"
    tail = Listener(api_stack, "viewer", {"topics": "logs", "pipeline": "sales", "text": marker})
    errors = Listener(api_stack, "editor", {"topics": "logs", "pipeline": "sales", "level": "ERROR"})
    listeners += [tail, errors]
    run_id = run_job(api_stack, "sales", fail=True, say=marker)
    lines = tail.wait(lambda evs: any(marker in e["data"]["message"] for e in evs), f"a line with {marker}")
    assert all(marker in f"{e['data']['message']}{e['data'].get('error')}" for e in lines), lines
    failed = errors.wait(finished(run_id), f"RUN_FAILURE of {run_id}")
    assert all(e["data"]["level"] in ("ERROR", "CRITICAL") for e in failed)
    assert failed[-1]["data"]["status"] == "FAILURE"
    assert any(marker in (e["data"].get("error") or "") for e in failed), "the step failure names its cause"


def test_a_scoped_stream_never_carries_another_pipelines_events(api_stack: ApiStack, hub: EventHub,
                                                                  listeners: list[Listener]) -> None:
    refused = Listener(api_stack, "shop_viewer", {"pipeline": "sales"})
    listeners.append(refused)
    assert refused.response.status_code == 403
    assert refused.response.json()["missing_permission"] == "viewer:stream_events on sales"
    scoped = Listener(api_stack, "shop_viewer", {"topics": "runs,logs"})
    everyone = Listener(api_stack, "viewer", {"topics": "runs,logs"})
    listeners += [scoped, everyone]
    runs = {name: run_job(api_stack, name) for name in ("sales", None, "shop")}
    for run_id in runs.values():
        everyone.wait(finished(run_id), f"end of run {run_id}")
    # The shop run finished last: once the scoped stream has it, it has had its chance at the others.
    seen = scoped.wait(finished(runs["shop"]), "end of the shop run")
    assert {e["data"]["pipeline"] for e in seen} == {"shop"}, seen
    assert runs["sales"] not in {e["data"]["run_id"] for e in seen}
    assert runs[None] not in {e["data"]["run_id"] for e in seen}


def test_last_event_id_resumes_where_the_client_left(api_stack: ApiStack, hub: EventHub,
                                                     listeners: list[Listener]) -> None:
    first = Listener(api_stack, "viewer", {"topics": "logs", "pipeline": "shop"})
    listeners.append(first)
    run_id = run_job(api_stack, "shop")
    seen = [e for e in first.wait(finished(run_id), f"end of {run_id}") if e["data"]["run_id"] == run_id]
    first.close()
    middle = seen[len(seen) // 2]
    again = Listener(api_stack, "viewer", {"topics": "logs", "pipeline": "shop"}, {"Last-Event-ID": middle["id"]})
    listeners.append(again)
    replayed = again.wait(finished(run_id), "the replayed end of the run")
    assert [e["id"] for e in replayed] == [e["id"] for e in seen[seen.index(middle) + 1:]]
    # An id this process never sent (or has forgotten): the client is told to refetch.
    lost = Listener(api_stack, "viewer", {"topics": "logs", "last_event_id": "0-gone:1"})
    listeners.append(lost)
    assert lost.wait(lambda evs: bool(evs), "the first event")[0]["event"] == "reset"


def test_stream_caps_answer_429_and_a_client_that_goes_away_frees_its_slot(
        api_stack: ApiStack, hub: EventHub, listeners: list[Listener]) -> None:
    mine = [Listener(api_stack, "viewer"), Listener(api_stack, "viewer")]
    listeners += mine
    assert [m.response.status_code for m in mine] == [200, 200]
    third = Listener(api_stack, "viewer")
    listeners.append(third)
    assert third.response.status_code == 429 and third.response.headers["retry-after"]
    assert "AGGREGATOR_API_EVENTS_PER_USER" in third.response.json()["detail"]
    other = Listener(api_stack, "editor")
    listeners.append(other)
    assert other.response.status_code == 200
    full = Listener(api_stack, "admin")
    listeners.append(full)
    assert full.response.status_code == 429 and "AGGREGATOR_API_EVENTS_TOTAL" in full.response.json()["detail"]
    reads = hub.reads
    mine[0].wait(lambda evs: mine[0].comments >= 4, "heartbeats")  # 0.5 s each: about 2 s of polling
    # One reader for every stream: three streams open, about one read per 0.2 s poll, not three.
    assert hub.reads - reads <= 2.0 / hub.limits.events_poll_s + 4
    mine[0].close()
    deadline = time.monotonic() + 30
    while hub.slots.held("viewer") > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.slots.held("viewer") == 1, "the stream of a client that went away still holds its slot"
    assert len(hub.subscribers) == 2
    back = Listener(api_stack, "viewer")
    listeners.append(back)
    assert back.response.status_code == 200


def test_a_stream_ends_after_its_lifetime_and_says_why(api_stack: ApiStack, hub: EventHub,
                                                       listeners: list[Listener]) -> None:
    hub.limits = hub.limits.model_copy(update={"events_max_s": 1.5})
    listener = Listener(api_stack, "viewer")
    listeners.append(listener)
    ended = listener.wait(lambda evs: any(e["event"] == "end" for e in evs), "the end event")
    assert ended[-1]["data"] == {"reason": "lifetime"}
    with listener._cond:
        assert listener._cond.wait_for(lambda: listener.ended, 30)


@pytest.mark.parametrize("query", ["topics=everything", "level=LOUD", "text=" + "x" * 201, "last_event_id=a%20b",
                                   "unknown=1"])
def test_bad_subscriptions_answer_400_naming_the_parameter(api_stack: ApiStack, query: str) -> None:
    with api_stack.client("viewer") as client:
        answer = client.get(f"/api/events?{query}")
    assert answer.status_code == 400, answer.text
    assert f"query {query.split('=')[0]}" in answer.json()["detail"]


def test_a_stopping_proxy_ends_its_streams_at_once(api_stack: ApiStack, tmp_path: Path) -> None:
    """uvicorn waits for open connections before shutting down: without the drain a replica being replaced
    would wait for its streams' lifetime (15 minutes by default) instead of seconds."""
    platform = api_stack.proxy.app.api.state.platform
    proxy = start_api_proxy(api_stack.upstream_url, f"sqlite:///{tmp_path / 'proxy.db'}", platform)
    listener: Listener | None = None
    try:
        proxy.app.ops.dagster_home = str(Path(api_stack.home) / "dagster")
        proxy.store.add_user("watcher", PASSWORD, Role.viewer)
        token, _ = proxy.store.create_token("watcher")
        listener = Listener(proxy, "watcher", token=token)
        assert listener.response.status_code == 200  # headers come once the stream is subscribed
        started = time.monotonic()
        proxy.stop()
        ended = listener.wait(lambda evs: any(e["event"] == "end" for e in evs), "the end event")
        assert ended[-1]["data"] == {"reason": "draining"}
        assert not proxy.thread.is_alive() and time.monotonic() - started < 20
    finally:
        if listener is not None:
            listener.close()
        proxy.stop()


def test_a_revoked_token_or_a_narrowed_grant_ends_the_stream(api_stack: ApiStack, hub: EventHub,
                                                             listeners: list[Listener],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions were checked only when a stream opened, so a revoked token or a disabled user kept hearing
    runs and log lines for up to the stream's lifetime (15 min); now they are checked again every RECHECK_S."""
    monkeypatch.setattr(live_events, "RECHECK_S", 0.5)
    store = api_stack.proxy.store
    store.add_user("ev_gone", PASSWORD, Role.viewer)
    revoked_secret, revoked = store.create_token("ev_gone")
    narrowed_secret, _ = store.create_token("ev_gone")
    first = Listener(api_stack, "viewer", token=revoked_secret)
    listeners.append(first)
    first.wait(lambda evs: first.comments > 0 or bool(evs), "a heartbeat")
    store.revoke_token(revoked.id)
    ended = first.wait(lambda evs: any(e["event"] == "end" for e in evs), "the end after the revocation")
    assert ended[-1]["data"] == {"reason": "credentials"}
    second = Listener(api_stack, "viewer", token=narrowed_secret)
    listeners.append(second)
    second.wait(lambda evs: second.comments > 0 or bool(evs), "a heartbeat")
    store.set_role("ev_gone", Role.viewer, ["shop"])  # the grant changed: the stream's filter is stale
    ended = second.wait(lambda evs: any(e["event"] == "end" for e in evs), "the end after the grant changed")
    assert ended[-1]["data"] == {"reason": "credentials"}
    # Reconnecting gets the new grant (and a token that is gone, 401).
    gone = Listener(api_stack, "viewer", token=revoked_secret)
    listeners.append(gone)
    assert gone.response.status_code == 401
