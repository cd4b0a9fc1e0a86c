"""Named points of the upload finalization where a test can make the proxy die (SIGKILL itself).

`AGGREGATOR_UPLOAD_FAULT_AT=<step>` is for crash tests only: the proxy kills itself at that step so the test
can restart it and check that the upload ends whole and once. Unset in any deployment, it costs one lookup.
"""

from __future__ import annotations

import os
import signal

# In order: every byte appended (no record yet); the finalization record written; the file linked into the
# sensor's directory; the staged part unlinked; the record moved to the delivered ledger.
STEPS = ("received", "recorded", "linked", "unlinked", "ledgered")


def fault_point(step: str) -> None:
    if os.environ.get("AGGREGATOR_UPLOAD_FAULT_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
