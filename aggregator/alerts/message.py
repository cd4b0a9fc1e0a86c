"""One alert as every channel renders it: what happened, where, and a link to the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class AlertMessage:
    """An alert or a recovery. `subject` is the incident key used for de-duplication."""

    kind: str
    subject: str
    title: str
    summary: str
    pipeline: str | None = None
    run_id: str | None = None
    step: str | None = None
    check: str | None = None
    severity: str | None = None
    url: str | None = None
    resolved: bool = False

    def payload(self) -> dict[str, Any]:
        """The generic webhook body."""
        return {"event": "resolved" if self.resolved else "alert", **asdict(self)}

    def text(self) -> str:
        """Plain text for Slack and e-mail."""
        lines = [("RESOLVED: " if self.resolved else "") + self.title]
        if self.pipeline:
            lines.append(f"Pipeline: {self.pipeline}")
        if self.run_id:
            lines.append(f"Run: {self.run_id}")
        if self.step:
            lines.append(f"Step: {self.step}")
        if self.check:
            lines.append(f"Check: {self.check}" + (f" ({self.severity})" if self.severity else ""))
        if self.summary:
            lines.append(f"Error: {self.summary}" if not self.resolved else self.summary)
        if self.url:
            lines.append(f"Link: {self.url}")
        return "\n".join(lines)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> AlertMessage:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


def summarize(text: str | None, limit: int = 500) -> str:
    """The first lines of an error, bounded: enough to act on, not a whole traceback in a chat message."""
    if not text:
        return ""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
