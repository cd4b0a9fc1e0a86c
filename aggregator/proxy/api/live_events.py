"""Live run status changes and run log lines as server-sent events (`GET /api/events`).

One reader per proxy process (`EventHub`) reads new records of Dagster's event log (aggregator/event_feed.py)
while any stream is open, and fans each out to the streams that may see it: a stream carries only runs of the
pipelines its grant covers (a run without a pipeline only to unscoped grants) and, for `logs`, the lines that
match the same filters as log search. A client never reads the storage itself, so a hundred open Consoles cost
one read per poll. Events keep the last `BUFFER` records for `Last-Event-ID`: a client reconnecting to this
process (or, on a storage with global ids, to another replica that read past that id) is sent what it missed;
otherwise it gets `reset` and refetches. Every stream holds a slot (per user and in total, 429 beyond), sends a
comment when idle so intermediaries keep it and a gone client is noticed, and ends after an idle and a total
lifetime so a replica drains; it ends at once when the client goes away, giving its slot back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
from dagster._core.events import EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from aggregator.event_feed import FeedCursor, end_cursor, read_new
from aggregator.logs.search import LEVELS, PIPELINE_TAG, LogLine, line_of
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.slots import Slots, SlotsFull
from aggregator.proxy.api.state import ApiLimits
from aggregator.proxy.context import Services
from aggregator.proxy.identity.frontdoor import still_grants
from aggregator.proxy.policy.rbac import Principal, Role
from aggregator.proxy.routes.ops import DagsterOps

log = logging.getLogger(__name__)

BUFFER = 2000  # events kept for Last-Event-ID
QUEUE = 1000  # events waiting for one slow client; past it its stream ends (it reconnects and resumes)
LINGER_S = 60.0  # the reader keeps reading this long after the last stream closed, so a reconnect resumes
RUNS_CACHED = 10_000  # run id -> pipeline look-ups kept
RETRY_MS = 3000  # what EventSource waits before reconnecting
# A stream's credentials are checked again this often (and before the first event after that): a sign-out, a
# disabled user, a revoked token or a changed grant ends the stream instead of feeding it for its lifetime.
RECHECK_S = 10.0

StillAllowed = Callable[[], Awaitable[bool]]
TOPICS = ("runs", "logs")


class EventQuery(BaseModel):
    """What a stream carries: run status changes, log lines, or both; log lines filtered like log search."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: str = Field(default="runs", pattern=r"^(runs|logs)(,(runs|logs))?$",
                        description="`runs`, `logs` or `runs,logs`.")
    pipeline: str | None = Field(default=None, max_length=128, description="Only runs of this pipeline.")
    run_id: str | None = Field(default=None, max_length=64, description="Only this run.")
    level: str | None = Field(default=None, description="Log lines at or above this level: DEBUG, INFO, WARNING, "
                              "ERROR, CRITICAL.")
    text: str | None = Field(default=None, max_length=200,
                             description="Log lines holding this case-insensitive text in message or error.")
    last_event_id: str | None = Field(default=None, max_length=120, pattern=r"^[A-Za-z0-9:-]+$",
                                      description="Resume after this event id (the `Last-Event-ID` header wins).")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in LEVELS:
            raise ValueError(f"{value!r} is not a level; allowed: {', '.join(LEVELS)}")
        return value.upper() if value else None


@dataclass(frozen=True)
class LiveEvent:
    """One event of the stream: its id (`<storage id>`, or `<run id>:<storage id>` on per-run storage)."""

    id: str
    kind: Literal["run", "log"]
    pipeline: str | None
    run_id: str
    data: dict[str, Any]
    line: LogLine

    @property
    def number(self) -> int | None:
        return int(self.id) if self.id.isdigit() else None

    def frame(self) -> str:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


@dataclass(eq=False)
class Subscriber:
    scope: frozenset[str] | None
    query: EventQuery
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    after: int | None = None  # resumed after this global id: older live events are not sent again
    overflowed: bool = False

    def wants(self, event: LiveEvent) -> bool:
        if self.scope is not None and event.pipeline not in self.scope:
            return False  # deny by default: a run with no pipeline is no scoped grant's
        if self.after is not None and event.number is not None and event.number <= self.after:
            return False  # sent already by the replica the client read from before
        q = self.query
        if (q.pipeline and event.pipeline != q.pipeline) or (q.run_id and event.run_id != q.run_id):
            return False
        # a run's status change is a log line too: a live tail shows it like log search does
        return ((event.kind == "run" and "runs" in q.topics)
                or ("logs" in q.topics and event.line.matches(q.level, q.text)))


class EventHub:
    """The one reader of Dagster's event log in this process and the streams it feeds."""

    def __init__(self, ops: DagsterOps, limits: ApiLimits) -> None:
        self.ops, self.limits = ops, limits
        self.slots = Slots(limits.events_total, limits.events_per_user)
        self.subscribers: set[Subscriber] = set()
        self.buffer: deque[LiveEvent] = deque(maxlen=BUFFER)
        self.closing = False  # the process is stopping: new streams are refused, open ones ended
        self.reads = 0  # reads of the event log storage: one per poll, whatever the number of streams
        self._evicted = False
        self._start: int | None = None  # the global id the reader started after (None: per-run ids)
        self._task: asyncio.Task[None] | None = None
        self._idle_since: float | None = None
        self._pipelines: OrderedDict[str, str | None] = OrderedDict()

    def take(self, user: str) -> Callable[[], None]:
        if self.closing:
            raise ApiError(503, "this proxy is shutting down; reconnect (to another replica)", retry_after=1.0)
        try:
            return self.slots.take(user)
        except SlotsFull as full:
            limit = ("AGGREGATOR_API_EVENTS_PER_USER" if full.which == "user" else "AGGREGATOR_API_EVENTS_TOTAL")
            who = "you have" if full.which == "user" else "this proxy has"
            raise ApiError(429, f"{who} {full.held} live event streams open (limit {limit}); close one or poll",
                           retry_after=5.0) from None

    def subscribe(self, sub: Subscriber, last_id: str | None) -> list[LiveEvent] | None:
        """Register `sub`; the events it missed after `last_id` (None: they cannot be told, send `reset`)."""
        replay: list[LiveEvent] | None = []
        if last_id is not None:
            replay = self._since(last_id)
            if last_id.isdigit():
                sub.after = int(last_id)
        self.subscribers.add(sub)
        self._idle_since = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read_loop(), name="event-hub")
        return None if replay is None else [e for e in replay if sub.wants(e)]

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._idle_since = time.monotonic()

    def _since(self, last_id: str) -> list[LiveEvent] | None:
        events = list(self.buffer)
        for i, event in enumerate(events):
            if event.id == last_id:
                return events[i + 1:]
        if not last_id.isdigit() or self._start is None or int(last_id) < self._start:
            return None
        number = int(last_id)
        if self._evicted and (not events or (events[0].number or 0) > number):
            return None
        return [e for e in events if e.number is not None and e.number > number]

    async def close(self) -> None:
        """End every stream (the proxy is shutting down) and stop reading."""
        self.closing = True
        for sub in list(self.subscribers):
            if sub.queue.full():
                sub.overflowed = True
            else:
                sub.queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read_loop(self) -> None:
        self.buffer.clear()  # a new reader starts at the end of the log: older ids cannot be resumed
        self._evicted = False
        instance = self.ops.instance()
        cursor: FeedCursor = await self.ops.services.run_io(end_cursor, instance, time.time())
        self._start = cursor.ids.get("*")
        while self.subscribers or (self._idle_since or 0) + LINGER_S > time.monotonic():
            try:
                events = await self.ops.services.run_io(self._read, instance, cursor)
            except Exception:
                log.exception("reading Dagster's event log for live events failed; retrying")
                await asyncio.sleep(self.limits.events_poll_s * 5)
                continue
            for event in events:
                self._publish(event)
            await asyncio.sleep(self.limits.events_poll_s)

    def _read(self, instance: dg.DagsterInstance, cursor: FeedCursor) -> list[LiveEvent]:
        """New records as events (in a worker thread: storage reads block)."""
        self.reads += 1
        sharded = instance.event_log_storage.is_run_sharded
        out = []
        for record in read_new(instance, None, cursor):
            entry = record.event_log_entry
            line = line_of(record.storage_id, entry)
            pipeline = self._pipeline(instance, entry.run_id)
            event_id = f"{entry.run_id}:{record.storage_id}" if sharded else str(record.storage_id)
            body = {**line.to_json(), "pipeline": pipeline}
            dagster_event = entry.dagster_event
            status = EVENT_TYPE_TO_PIPELINE_RUN_STATUS.get(dagster_event.event_type) if dagster_event else None
            if status is not None:
                out.append(LiveEvent(event_id, "run", pipeline, entry.run_id, {**body, "status": status.value}, line))
            else:
                out.append(LiveEvent(event_id, "log", pipeline, entry.run_id, body, line))
        return out

    def _pipeline(self, instance: dg.DagsterInstance, run_id: str) -> str | None:
        if run_id in self._pipelines:
            self._pipelines.move_to_end(run_id)
            return self._pipelines[run_id]
        run = instance.get_run_by_id(run_id)
        pipeline = run.tags.get(PIPELINE_TAG) if run is not None else None
        self._pipelines[run_id] = pipeline
        if len(self._pipelines) > RUNS_CACHED:
            self._pipelines.popitem(last=False)
        return pipeline

    def _publish(self, event: LiveEvent) -> None:
        if len(self.buffer) == self.buffer.maxlen:
            self._evicted = True
        self.buffer.append(event)
        for sub in list(self.subscribers):
            if sub.overflowed or not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True  # the stream ends; the client resumes from its last id

    async def frames(self, sub: Subscriber, replay: list[LiveEvent] | None,
                     still_allowed: StillAllowed) -> AsyncIterator[str]:
        """The stream of one subscriber: replay (or reset), then live events, heartbeats, the end."""
        loop = asyncio.get_running_loop()
        limits = self.limits
        started = last_event = checked = loop.time()
        yield f"retry: {RETRY_MS}\n\n"
        if replay is None:
            yield 'event: reset\ndata: {"reason":"events since Last-Event-ID are gone; refetch"}\n\n'
        for event in replay or []:
            yield event.frame()
        while True:
            now = loop.time()
            ends = min(started + limits.events_max_s, last_event + limits.events_idle_s)
            if now >= ends or sub.overflowed:
                reason = "overflow" if sub.overflowed else ("lifetime" if now >= started + limits.events_max_s
                                                            else "idle")
                yield f'event: end\ndata: {{"reason":"{reason}"}}\n\n'
                return
            try:
                item = await asyncio.wait_for(sub.queue.get(), min(limits.events_heartbeat_s, ends - now))
            except TimeoutError:
                item = KEEPALIVE
            if item is None:
                yield 'event: end\ndata: {"reason":"draining"}\n\n'
                return
            if loop.time() - checked >= RECHECK_S:
                if not await still_allowed():
                    yield 'event: end\ndata: {"reason":"credentials"}\n\n'
                    return
                checked = loop.time()
            if item is KEEPALIVE:
                yield ": keepalive\n\n"
                continue
            last_event = loop.time()
            yield item.frame()


KEEPALIVE: Any = object()  # a heartbeat in the frame loop, told apart from an event and from the end (None)


class EventStream(StreamingResponse):
    """A streamed answer that gives its slot back however it ends, even if it never started."""

    def __init__(self, frames: AsyncIterator[str], done: Callable[[], None]) -> None:
        super().__init__(frames, media_type="text/event-stream",
                         headers={"cache-control": "no-store", "x-accel-buffering": "no"})
        self.done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.done()


def routes(ops: DagsterOps, hub: EventHub, services: Services) -> list[Route]:
    async def stream_events(req: ApiRequest) -> EventStream:
        """Run status changes (`run`) and run log lines (`logs`) as they happen, as server-sent events; a
        scoped grant gets its pipelines' runs only."""
        query = req.query_as(EventQuery)
        principal: Principal = req.principal
        require(principal, Role.viewer, "stream_events", [query.pipeline] if query.pipeline else [])
        if ops.dagster_home is None:
            raise ApiError(503, "live events are not configured on this proxy (DAGSTER_HOME)")
        last_id = req.header("last-event-id") or query.last_event_id
        if last_id is not None and (len(last_id) > 120 or not all(c.isalnum() or c in ":-" for c in last_id)):
            raise ApiError(400, "Last-Event-ID: an id this stream sent (letters, digits, '-' and ':')")
        release = hub.take(principal.user)
        sub = Subscriber(scope=principal.scope, query=query)
        try:
            replay = hub.subscribe(sub, last_id)
        except BaseException:
            release()
            raise

        def done() -> None:
            hub.unsubscribe(sub)
            release()

        return EventStream(hub.frames(sub, replay, lambda: still_grants(services, req.ctx, principal)), done)

    return [Route("GET", "/api/events", stream_events, "Live run and log events (server-sent events)",
                  query=EventQuery, media=("text/event-stream",), statuses=(429, 503),
                  headers_in=("Last-Event-ID",))]

