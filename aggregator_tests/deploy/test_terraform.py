"""deploy/terraform/aws, parsed with python-hcl2 (no terraform binary or providers here, so nothing is planned):
every file parses, every reference points at something declared, every variable is used and documented, the
chart values it outputs use keys the charts have, and its Secrets Manager entries are exactly the Kubernetes
Secrets (and keys) the charts read."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from lark.exceptions import LarkError

from aggregator_tests.deploy.helm import render
from aggregator_tests.deploy.paths import DEPLOY

TERRAFORM = DEPLOY / "terraform" / "aws"
FILES = sorted(TERRAFORM.glob("*.tf"))
RESOURCE_PREFIXES = ("aws_", "random_", "tls_")


def unquote(name: str) -> str:
    return name.strip('"')


def parse(text: str) -> dict[str, Any]:
    return hcl2.loads(text)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "__comments__":
                yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def declarations(modules: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"variable": set(), "local": set(), "resource": set(), "data": set(), "output": set()}
    for module in modules:
        for block in module.get("variable", []):
            out["variable"] |= {unquote(k) for k in block}
        for block in module.get("locals", []):
            out["local"] |= {k for k in block if not k.startswith("__")}
        for block in module.get("resource", []):
            for kind, named in block.items():
                out["resource"] |= {f"{unquote(kind)}.{unquote(n)}" for n in named}
        for block in module.get("data", []):
            for kind, named in block.items():
                out["data"] |= {f"{unquote(kind)}.{unquote(n)}" for n in named}
        for block in module.get("output", []):
            out["output"] |= {unquote(k) for k in block}
    return out


def references(modules: list[dict]) -> dict[str, set[str]]:
    text = "\n".join(s for module in modules for s in strings(module))
    prefixes = "|".join(RESOURCE_PREFIXES)
    resource = re.compile(rf"(?<![\w.])((?:{prefixes})\w+)\.(\w+)")
    return {
        "variable": set(re.findall(r"\bvar\.(\w+)", text)),
        "local": set(re.findall(r"\blocal\.(\w+)", text)),
        "data": {f"{a}.{b}" for a, b in re.findall(r"\bdata\.(\w+)\.(\w+)", text)},
        "resource": {f"{a}.{b}" for a, b in resource.findall(text)},
    }


def problems(modules: list[dict]) -> list[str]:
    declared, used = declarations(modules), references(modules)
    found = [f"{kind} {name} is used but not declared" for kind in used for name in sorted(used[kind] - declared[kind])]
    found += [f"{kind} {name} is declared but never used" for kind in ("variable", "local")
              for name in sorted(declared[kind] - used[kind])]
    return found


@pytest.fixture(scope="module")
def modules() -> list[dict]:
    parsed = []
    for path in FILES:
        try:
            parsed.append(parse(path.read_text()))
        except LarkError as exc:
            pytest.fail(f"{path.name} does not parse: {exc}")
    return parsed


def test_every_file_parses_and_names_line_up(modules: list[dict]) -> None:
    assert len(FILES) >= 6
    assert problems(modules) == []


def test_the_reference_check_catches_a_typo() -> None:
    """Not vacuous: an undeclared variable, a misspelled resource and an unused variable are each reported."""
    module = parse('variable "used" {\n  type = string\n}\nvariable "unused" {\n  type = string\n}\n'
                   'resource "aws_s3_bucket" "b" {\n  bucket = "${var.used}-${var.missing}"\n}\n'
                   'output "o" {\n  value = aws_s3_bucket.bb.id\n}\n')
    assert problems([module]) == ["variable missing is used but not declared",
                                  "resource aws_s3_bucket.bb is used but not declared",
                                  "variable unused is declared but never used"]


def test_every_variable_is_typed_and_described(modules: list[dict]) -> None:
    for module in modules:
        for block in module.get("variable", []):
            for name, body in block.items():
                assert body.get("description") and body.get("type"), unquote(name)


def local_value(modules: list[dict], name: str) -> Any:
    (value,) = [block[name] for module in modules for block in module.get("locals", []) if name in block]
    return value


def key_paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not key.startswith("__"):
                yield prefix + (unquote(key),)
                yield from key_paths(value, prefix + (unquote(key),))


def has_path(values: dict, path: tuple[str, ...]) -> bool:
    node: Any = values
    for key in path:
        if node == {}:
            return True  # a free-form map in the values (annotations): any key is the chart's
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


@pytest.mark.parametrize(("local", "values_file"), [
    ("aggregator_chart_values", DEPLOY / "helm" / "aggregator" / "values.yaml"),
])
def test_chart_values_outputs_use_keys_the_charts_have(modules: list[dict], local: str, values_file: Path) -> None:
    values = yaml.safe_load(values_file.read_text())
    paths = list(key_paths(local_value(modules, local)))
    assert paths
    for path in paths:
        assert has_path(values, path), f"local.{local}: {'.'.join(path)} is not a key of {values_file.name}"


def secrets_the_charts_read(objects: list[dict]) -> dict[str, set[str]]:
    """{Kubernetes Secret name: keys read} for the chart's rendered `objects` and the run pods its instance makes."""
    needed: dict[str, set[str]] = {}
    for obj in objects:
        spec = obj.get("spec", {})
        template = (spec.get("jobTemplate", {}).get("spec", spec)).get("template", {})
        for container in template.get("spec", {}).get("containers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    needed.setdefault(ref["name"], set()).add(ref["key"])
            for source in container.get("envFrom", []):
                needed.setdefault(source["secretRef"]["name"], set())
    # Run pods are not in the chart's objects: the run launcher of its instance names their secrets.
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "aggregator-dagster-instance":
            launcher = yaml.safe_load(obj["data"]["dagster.yaml"])["run_launcher"]["config"]
            for name in launcher["env_secrets"]:
                needed.setdefault(name, set())
    needed["aggregator-dagster-db"].add("DAGSTER_PG_URL")
    # The backup job's envFrom secret carries libpq's connection variables (files/backup.sh).
    needed["aggregator-backup"] |= {"PGHOST", "PGUSER", "PGPASSWORD"}
    needed["aggregator-runs"] = needed.get("aggregator-runs", set()) | {"AGGREGATOR_WAREHOUSE_URL"}

    return needed


def test_secrets_are_exactly_what_the_charts_read(modules: list[dict], helm: Path,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """The Secrets Manager entries are named for the Kubernetes Secrets both charts reference, and hold the keys
    the aggregator chart's pods read from them."""
    secrets = {unquote(name): {unquote(k) for k in keys if not k.startswith("__")}
               for name, keys in local_value(modules, "kubernetes_secrets").items() if not name.startswith("__")}
    secrets["aggregator-runs"] = {k for k in local_value(modules, "runs_secret") if not k.startswith("__")}

    needed = secrets_the_charts_read(render(helm, tmp_path_factory.mktemp("helm-home")))
    assert set(secrets) == set(needed)
    for name, keys in needed.items():
        assert keys <= secrets[name], f"{name}: Terraform lacks {sorted(keys - secrets[name])}"


def test_the_secrets_docs_create_are_the_ones_the_charts_read(helm: Path,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """docs/deploy.md's install commands create every Secret the charts read, each with the keys read from it."""
    docs = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    commands = re.findall(r"kubectl -n dagster create secret generic ([\w-]+)((?:[^\n]*\\\n)*[^\n]*)", docs)
    created: dict[str, set[str]] = {}
    for name, rest in commands:
        created.setdefault(name, set()).update(re.findall(r"--from-literal=([\w-]+)=", rest))
    needed = secrets_the_charts_read(render(helm, tmp_path_factory.mktemp("helm-home")))
    assert set(needed) <= set(created), f"docs/deploy.md never creates {sorted(set(needed) - set(created))}"
    for name, keys in needed.items():
        assert keys <= created[name], f"docs/deploy.md: secret {name} lacks {sorted(keys - created[name])}"


def resources(modules: list[dict], kind: str) -> dict[str, dict]:
    return {unquote(name): body for module in modules for block in module.get("resource", [])
            for k, named in block.items() if unquote(k) == kind for name, body in named.items()}


def test_default_eks_version_can_still_be_created(modules: list[dict]) -> None:
    """Regression (issue 19, major 5): the default 1.30 was past EKS extended support, so `apply` failed. The
    default is in standard support, and a validation refuses versions that are not."""
    (variable,) = [body for module in modules for block in module.get("variable", [])
                   for name, body in block.items() if unquote(name) == "kubernetes_version"]
    major, minor = unquote(variable["default"]).split(".")
    assert (int(major), int(minor)) >= (1, 33)
    (validation,) = variable["validation"]
    assert ">= 33" in validation["condition"]


def test_network_policies_are_enforced_and_backups_get_a_volume(modules: list[dict], helm: Path,
                                                               tmp_path: Path) -> None:
    """Regression (issue 19, major 5): no `enableNetworkPolicy` on the VPC CNI (every policy inert) and no
    StorageClass for the backup PVC (EKS 1.30+ has no default one)."""
    addons = {unquote(body["addon_name"]): body for body in resources(modules, "aws_eks_addon").values()}
    assert re.search(r'enableNetworkPolicy\s*=\s*"true"', addons["vpc-cni"]["configuration_values"])
    assert "aws_iam_role.ebs_csi" in addons["aws-ebs-csi-driver"]["service_account_role_arn"]
    persistence = local_value(modules, "aggregator_chart_values")["backup"]["persistence"]
    storage_class = unquote(persistence["storageClass"])
    provisioner = unquote(persistence["createStorageClass"]["provisioner"])
    assert provisioner == "ebs.csi.aws.com"
    objects = render(helm, tmp_path, "--set", f"backup.persistence.storageClass={storage_class}",
                     "--set", f"backup.persistence.createStorageClass.provisioner={provisioner}")
    (created,) = [o for o in objects if o["kind"] == "StorageClass"]
    (claim,) = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert created["metadata"]["name"] == claim["spec"]["storageClassName"] == storage_class
    assert created["provisioner"] == provisioner and created["reclaimPolicy"] == "Retain"


def test_state_is_remote_encrypted_and_locked(modules: list[dict]) -> None:
    """Regression (issue 19, minor 1): no backend, so every generated role and admin password sat in a local
    terraform.tfstate, unlocked. The S3 backend encrypts and locks it (use_lockfile, Terraform 1.10+); bucket, key
    and region come from the documented backend.hcl (partial configuration), so no account is hard-coded."""
    (settings,) = [block for module in modules for block in module.get("terraform", [])]
    (backend,) = settings["backend"]
    ((kind, body),) = backend.items()
    assert unquote(kind) == "s3"
    assert body["encrypt"] is True and body["use_lockfile"] is True
    assert not {"bucket", "key", "region"} & set(body), "partial configuration: these come from backend.hcl"
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", unquote(settings["required_version"]))
    assert minimum and (int(minimum[1]), int(minimum[2])) >= (1, 10), "use_lockfile needs Terraform 1.10"

    example = parse((TERRAFORM / "backend.hcl.example").read_text())
    assert {"bucket", "key", "region"} <= set(example)
    docs = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    assert "cp backend.hcl.example backend.hcl" in docs and "terraform init -backend-config=backend.hcl" in docs
    assert "put-bucket-versioning" in docs


@pytest.mark.parametrize("name", ["backend.hcl", "terraform.tfstate", "terraform.tfstate.backup", ".terraform/x"])
def test_state_and_backend_settings_cannot_be_committed(name: str) -> None:
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", str(TERRAFORM / name)],
                             cwd=DEPLOY, check=False)
    assert ignored.returncode == 0, f"deploy/terraform/aws/{name} is not git-ignored"
