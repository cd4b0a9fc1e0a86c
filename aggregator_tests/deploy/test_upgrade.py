"""Regression (issue 19, major 3): the documented upgrade `--set dagsterWebserver.image.tag=<new>` moved the webserver
only (the image was shared through a YAML anchor), after the pre-upgrade hook had migrated the schema with the
new image: new schema, new webserver, old daemon, code server and run pods.

Now one value names the image: rendered with `--set image.tag=X` (or a digest), every platform container, the
image run pods inherit (the code server's DAGSTER_CURRENT_IMAGE) and the migration hook use X, and nothing else
changes the image of one component alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from aggregator_tests.deploy.helm import CHART, render
from aggregator_tests.deploy.test_chart import named, pod_specs

REPOSITORY = "registry.example.com/data-aggregator"
# Third-party images, pinned on their own (values: backup.image, pgbouncer.image).
OTHER_IMAGES = {"CronJob/aggregator-backup", "Deployment/aggregator-pgbouncer"}
EVERYTHING = ("--set", "pgbouncer.enabled=true", "--set", "monitoring.enabled=true", "--set", "worker.enabled=true")


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


def platform_images(objects: list[dict]) -> dict[str, str]:
    """{`Kind/name/container`: image} of every container of ours, the hook Job included."""
    images = {}
    for where, template in pod_specs(objects).items():
        for container in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            if where not in OTHER_IMAGES:
                images[f"{where}/{container['name']}"] = container["image"]
    return images


@pytest.mark.parametrize(("flag", "expected"), [
    ("image.tag=9.9.9", f"{REPOSITORY}:9.9.9"),
    ("image.digest=sha256:" + "ab" * 32, f"{REPOSITORY}@sha256:" + "ab" * 32),
])
def test_one_set_moves_every_component_and_the_migration(helm: Path, helm_home: Path, flag: str,
                                                         expected: str) -> None:
    objects = render(helm, helm_home, *EVERYTHING, "--set", flag)
    images = platform_images(objects)
    expected_components = {"Deployment/aggregator-webserver", "Deployment/aggregator-daemon",
                           "Deployment/aggregator-code-server", "Deployment/aggregator-proxy",
                           "Job/aggregator-migrate", "CronJob/aggregator-retention"}
    assert expected_components <= {k.rsplit("/", 1)[0] for k in images}
    assert set(images.values()) == {expected}, images
    # Run pods are started from the image the code location reports.
    code_server = named(objects, "Deployment", "aggregator-code-server")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in code_server["env"]}["DAGSTER_CURRENT_IMAGE"] == expected
    migrate = named(objects, "Job", "aggregator-migrate")
    assert "pre-upgrade" in migrate["metadata"]["annotations"]["helm.sh/hook"]


def test_no_component_has_an_image_setting_of_its_own() -> None:
    """The class of the bug: a second place that names our image (an anchor, a per-component `image:` block) can
    be set for one component alone. Only `image`, and the two third-party images, are image settings."""
    text = (CHART / "values.yaml").read_text()
    code = [line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#")]
    anchors = [line for line in code if re.search(r"(^|[\s:\-\[,])[&*][A-Za-z_][\w-]*(\s|$)|<<:", line)]
    assert not anchors, f"YAML anchors/aliases in values.yaml: {anchors}"

    def image_keys(node: object, path: str = "") -> list[str]:
        found = []
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}" if path else key
                if key == "image":
                    found.append(here)
                found += image_keys(value, here)
        return found

    assert sorted(image_keys(yaml.safe_load(text))) == ["backup.image", "image", "pgbouncer.image"]
    for template in (CHART / "templates").glob("*.yaml"):
        for line in template.read_text().splitlines():
            if line.strip().startswith("image:"):
                assert 'include "aggregator.image"' in line or ".Values.backup.image" in line \
                    or "$p.image" in line, f"{template.name}: {line.strip()}"


def test_a_spec_or_instance_change_rolls_the_dagster_components(helm: Path, helm_home: Path, tmp_path: Path) -> None:
    """Specs and the instance are ConfigMaps: a change must roll the pods that read them (checksums)."""
    spec = tmp_path / "a.yaml"
    spec.write_text("pipelines: []\n")
    before = render(helm, helm_home, "--set-file", f"pipelines.specs.a={spec}")
    spec.write_text("pipelines: []\n# changed\n")
    after = render(helm, helm_home, "--set-file", f"pipelines.specs.a={spec}")
    for name in ("aggregator-webserver", "aggregator-daemon", "aggregator-code-server"):
        old = named(before, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        new = named(after, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert old["checksum/pipelines"] != new["checksum/pipelines"], name
    # The daemon never runs twice, also not during a rollout.
    assert named(after, "Deployment", "aggregator-daemon")["spec"]["strategy"] == {"type": "Recreate"}
