"""Write the connector types as the API serves them into the Console's test fixture.

The Console's form tests (aggregator/console/src/*.test.tsx) render a form from every connector type's schema;
they read this file so they run without a proxy. `aggregator_tests/console/test_console_build.py` fails when it
is stale: run `python scripts/console_fixtures.py` after changing a connector's config.
"""

from __future__ import annotations

import json
from pathlib import Path

from aggregator.proxy.api.connection_routes import _type_info
from connectors.registry import CONNECTOR_TYPES

FIXTURE = Path(__file__).resolve().parents[1] / "aggregator" / "console" / "src" / "test" / "connector-types.json"


def connector_types_json() -> str:
    return json.dumps([_type_info(name).model_dump(mode="json") for name in CONNECTOR_TYPES], indent=1,
                      sort_keys=True) + "\n"


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(connector_types_json(), encoding="utf-8")
    print(f"wrote {FIXTURE}")
