"""The curl examples of docs/api.md, run as written against the running proxy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from aggregator_tests.proxy.api.conftest import ApiStack

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def test_curl_examples_run(api_stack: ApiStack, tmp_path: Path) -> None:
    [script] = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=False, cwd=tmp_path, capture_output=True,
                            text=True, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "PROXY": api_stack.url, "TOKEN": api_stack.tokens["editor"]})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert '"region","orders"' in result.stdout or "region,orders" in result.stdout
    assert (tmp_path / "sales_orders.parquet").stat().st_size > 0
    assert "retry: 3000" in result.stdout  # the live event stream's first frame
    assert (tmp_path / "regions.parquet").read_bytes()[:4] == b"PAR1"
    assert not (api_stack.specs_dir / "orders_copy.yaml").exists()  # the last example deletes it
    assert '"action": "update"' in result.stdout or '"action":"update"' in result.stdout.replace(" ", "")
