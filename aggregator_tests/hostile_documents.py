"""Generated hostile documents: YAML specs and JSON bodies that cost far more to load than their size.

Each generator returns the document and the limit it must be refused by, so a test can check that the
refusal names the right one. Sizes are small on purpose: the danger is in the expansion, not the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    name: str
    text: str
    limit: str  # the budget field that must refuse it (YamlLimits / JsonLimits)


def billion_laughs(levels: int, width: int, under: str = "") -> str:
    """`levels` anchors, each a list of `width` aliases of the one before: width**levels scalars expanded.
    `under` nests the last level below a spec key (`pipelines`, `templates`, ...)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    if under:
        lines.append(f"{under}: [*l{levels}]")
    return "\n".join(lines) + "\n"


def yaml_family() -> list[Hostile]:
    """The 550-byte billion laughs of the report, its variants, and the other ways to exhaust a loader."""
    found = [Hostile("billion-laughs-13x9", billion_laughs(13, 9), "max_nodes")]
    found += [Hostile(f"laughs-{levels}x{width}-{under or 'top'}", billion_laughs(levels, width, under), "max_nodes")
              for levels, width in ((6, 10), (9, 5), (20, 2)) for under in ("", "pipelines", "templates")]
    found += [
        Hostile("flow-seq-50000", "[" * 50_000 + "]" * 50_000, "max_depth"),
        Hostile("flow-map-20000", "a: " + "{a: " * 20_000 + "1" + "}" * 20_000, "max_depth"),
        Hostile("pipelines-deep", "pipelines: " + "[" * 5_000 + "]" * 5_000, "max_depth"),
        Hostile("block-deep-300", "".join(" " * i + f"k{i}:\n" for i in range(300)), "max_depth"),
        Hostile("seq-block-deep-300", "x:\n" + "".join(" " * (2 * i + 1) + "-\n" for i in range(300)), "max_depth"),
        Hostile("many-aliases", "a: &a x\nb: [" + ", ".join(["*a"] * 5_000) + "]\n", "max_aliases"),
        Hostile("recursive-alias", "pipelines: &p [*p]\n", "max_nodes"),
        Hostile("huge-key", "? " + "k" * (1 << 20) + "\n: 1\n", "max_bytes"),
        Hostile("huge-document", "pipelines: []\n" + "# padding\n" * 110_000, "max_bytes"),
    ]
    return found


def json_family() -> list[Hostile]:
    """Bodies that blow up `json.loads`: deep nesting (RecursionError), many tiny values, huge keys."""
    return [
        Hostile("deep-arrays-100000", "[" * 100_000 + "]" * 100_000, "max_depth"),
        Hostile("deep-arrays-5000", "[" * 5_000 + "]" * 5_000, "max_depth"),
        Hostile("deep-objects-20000", '{"a":' * 20_000 + "1" + "}" * 20_000, "max_depth"),
        Hostile("deep-in-a-field", '{"params": ' + "[" * 3_000 + "]" * 3_000 + "}", "max_depth"),
        Hostile("many-values", "[" + "[]," * 300_000 + "[]]", "max_values"),
        Hostile("many-members", "{" + ",".join(['"a":0'] * 210_000) + "}", "max_values"),
        Hostile("huge-key", json.dumps({"k" * (3 << 20): 1}), "max_bytes"),
    ]
