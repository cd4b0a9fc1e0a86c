"""Write the Console's test fixtures: the connector types as the API serves them, and the sample spec files.

The Console's form tests (aggregator/console/src/*.test.tsx) render a form from every connector type's schema,
and its builder tests round-trip every sample spec (aggregator/examples/) through the graph; they read these
files so they run without a proxy and from a copy of the Console's sources.
`aggregator_tests/console/test_console_serving.py` fails when they are stale: run
`python scripts/console_fixtures.py` after changing a connector's config or a sample spec.
"""

from __future__ import annotations

import json
from pathlib import Path

from aggregator.proxy.api.connection_routes import _type_info
from connectors.registry import CONNECTOR_TYPES

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "aggregator" / "console" / "src" / "test" / "connector-types.json"
SPECS_FIXTURE = FIXTURE.parent / "example-specs.json"
EXAMPLES = ROOT / "aggregator" / "examples"


def connector_types_json() -> str:
    return json.dumps([_type_info(name).model_dump(mode="json") for name in CONNECTOR_TYPES], indent=1,
                      sort_keys=True) + "\n"


def example_specs_json() -> str:
    """Every sample spec file under aggregator/examples/, by path relative to it, with its exact text."""
    files = sorted(p for p in EXAMPLES.rglob("*.yaml") if "data" not in p.relative_to(EXAMPLES).parts)
    return json.dumps({p.relative_to(EXAMPLES).as_posix(): p.read_text(encoding="utf-8") for p in files},
                      indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(connector_types_json(), encoding="utf-8")
    SPECS_FIXTURE.write_text(example_specs_json(), encoding="utf-8")
    print(f"wrote {FIXTURE} and {SPECS_FIXTURE}")
