"""Route alerts to channels: rule matching, one alert per incident, quiet hours, recovery, history."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from aggregator.alerts.deliver import deliver
from aggregator.alerts.history import AlertStore, now
from aggregator.alerts.message import AlertMessage
from aggregator.pipelines.alerts_spec import AlertRule, AlertSetup

log = logging.getLogger(__name__)




def _channels(rules: list[AlertRule]) -> list[str]:
    return list(dict.fromkeys(name for rule in rules for name in rule.channels))


class AlertRouter:
    """Decides what to send and records every decision in the alert history."""

    def __init__(self, setup: AlertSetup, store: AlertStore, clock: Callable[[], dt.datetime] = now) -> None:
        self.setup, self.store, self.clock = setup, store, clock

    def _quiet(self, rules: list[AlertRule]) -> bool:
        when = self.clock()
        windows = [r.quiet_hours or self.setup.config.quiet_hours for r in rules]
        return bool(windows) and all(w is not None and w.contains(when) for w in windows)

    def _send(self, message: AlertMessage, channels: list[str], status_ok: str) -> None:
        for name in channels:
            channel = self.setup.config.channels[name]
            result = deliver(name, channel, message, self.setup.config.delivery)
            self.store.record(
                status=status_ok if result.ok else "failed", kind=message.kind, subject=message.subject,
                title=message.title, channel=name, pipeline=message.pipeline, run_id=message.run_id,
                detail=result.error, attempts=result.attempts,
            )

    def fire(self, message: AlertMessage) -> None:
        """Alert once per incident: a second alert for an open incident is recorded as deduplicated."""
        rules = self.setup.rules_for(message.kind, message.pipeline, message.severity)
        if not rules:
            return
        if message.kind in ("run_success", "schema_change"):
            # not incidents: every opted-in success, and every load that changed a table's schema, is one notification
            self._send(message, _channels(rules), "sent")
            return
        held = self._quiet(rules)
        if not self.store.open_incident(message.subject, message.kind, message.pipeline, message.payload(),
                                        notified=not held):
            self.store.record(status="deduplicated", kind=message.kind, subject=message.subject,
                              title=message.title, pipeline=message.pipeline, run_id=message.run_id)
            return
        if held:
            self.store.record(status="held", kind=message.kind, subject=message.subject, title=message.title,
                              pipeline=message.pipeline, run_id=message.run_id, detail="quiet hours")
            return
        self._send(message, _channels(rules), "sent")

    def resolve(self, message: AlertMessage) -> None:
        """Close the incident for `message.subject`, if open, and send one recovery message."""
        incident = self.store.close_incident(message.subject)
        if incident is None:
            return
        rules = self.setup.rules_for(incident.kind, incident.pipeline, incident.alert.get("severity"))
        recovery = [r for r in rules if r.recovery]
        if not incident.notified or not recovery:
            # the alert was never sent (quiet hours): a recovery for it would be noise
            self.store.record(status="resolved", kind=incident.kind, subject=message.subject, title=message.title,
                              pipeline=incident.pipeline, run_id=message.run_id, detail="no message sent")
            return
        resolved = AlertMessage(**{**message.__dict__, "kind": incident.kind, "resolved": True})
        self._send(resolved, _channels(recovery), "resolved")

    def flush_held(self) -> None:
        """Send alerts held during quiet hours whose incident is still open once the window has ended."""
        for incident in self.store.open_incidents():
            if incident.notified:
                continue
            message = AlertMessage.from_payload(incident.alert)
            rules = self.setup.rules_for(incident.kind, incident.pipeline, message.severity)
            if rules and not self._quiet(rules):
                self.store.mark_notified(incident.subject)
                self._send(message, _channels(rules), "sent")
