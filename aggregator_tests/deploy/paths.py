"""Where the deployment artifacts live, and the executables of the installed package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.30"  # oldest minor the manifests promise to work on (EKS/GKE standard support)


def executable(name: str) -> str:
    """`name` from the test interpreter's environment (the image's entry points), else from PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is neither in {BIN} nor on PATH; install the package with `pip install .`")
    return found
