"""deploy/helm/aggregator rendered by a real helm (v3.17.1), every object validated against the Kubernetes schemas,
and the properties the issue's defects were about checked on the rendered objects. The chart holds the whole
platform (Dagster's webserver, daemon and code server included), so everything here is rendered, not read off
another chart's values."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from aggregator_tests.deploy.helm import CHART, render, run_helm
from aggregator_tests.deploy.paths import DEPLOY, KUBERNETES_VERSION

SAMPLE_SPEC = DEPLOY.parent / "aggregator" / "examples" / "pipelines" / "sales.yaml"
VARIANTS = {"defaults": (), "pgbouncer": ("--set", "pgbouncer.enabled=true"),
            "specs": ("--set-file", f"pipelines.specs.sales={SAMPLE_SPEC}"),
            "uploads": ("--set", "uploads.url=s3://aggregator-uploads/prod", "--set",
                        "uploads.s3.endpointUrl=https://minio.storage.svc:9000")}
# The Dagster components whose token reaches the API server (they create and delete run Jobs).
API_CLIENTS = {"Deployment/aggregator-webserver", "Deployment/aggregator-daemon"}


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def objects(request: pytest.FixtureRequest, helm: Path, helm_home: Path) -> list[dict]:
    return render(helm, helm_home, *VARIANTS[request.param])


@pytest.fixture(scope="module")
def default_objects(helm: Path, helm_home: Path) -> list[dict]:
    return render(helm, helm_home)


def named(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    """Every pod template of the chart, by `Kind/name`."""
    out = {}
    for o in objects:
        if o["kind"] in ("Deployment", "Job", "CronJob"):
            spec = o["spec"]["jobTemplate"]["spec"] if o["kind"] == "CronJob" else o["spec"]
            out[f"{o['kind']}/{o['metadata']['name']}"] = spec["template"]
    return out


def test_helm_lint_passes(helm: Path, helm_home: Path) -> None:
    for extra in VARIANTS.values():
        result = run_helm(helm, "lint", "--strict", str(CHART), *extra, home=helm_home)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.utils.latest_version()])
def test_every_rendered_object_validates_strictly(objects: list[dict], version: str) -> None:
    assert len(objects) > 10
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelled_field(default_objects: list[dict]) -> None:
    """Not vacuous: one typo in a rendered object fails the check above."""
    job = named(default_objects, "Job", "aggregator-migrate")
    job["spec"]["template"]["spec"]["restartPolicy_"] = job["spec"]["template"]["spec"].pop("restartPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_every_pod_runs_non_root_read_only_with_limits(objects: list[dict]) -> None:
    for where, template in pod_specs(objects).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["automountServiceAccountToken"] is (where in API_CLIENTS), where
        for container in spec["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert container["resources"]["limits"]["memory"], where


def test_webserver_port_is_unprivileged_end_to_end(default_objects: list[dict]) -> None:
    """Regression (issue 15, defect 1): with UID 10001 and every capability dropped, port 80 fails with
    `[Errno 13] ... permission denied`. The port is >= 1024 and the same in the webserver's command, its Service,
    the proxy's --upstream and the NetworkPolicy."""
    web = named(default_objects, "Deployment", "aggregator-webserver")["spec"]["template"]["spec"]
    (container,) = web["containers"]
    port = int(container["command"][container["command"].index("--port") + 1])
    assert port >= 1024 and web["securityContext"]["runAsUser"] >= 1000
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert named(default_objects, "Service", "aggregator-webserver")["spec"]["ports"][0]["port"] == port
    proxy = named(default_objects, "Deployment", "aggregator-proxy")
    command = proxy["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--upstream") + 1] == f"http://aggregator-webserver:{port}"
    policy = named(default_objects, "NetworkPolicy", "aggregator-dagster-webserver")
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [port]
    # Every container port any pod of ours opens is unprivileged too.
    for where, template in pod_specs(default_objects).items():
        for container in template["spec"]["containers"]:
            for p in container.get("ports", []):
                assert p["containerPort"] >= 1024, where


def test_the_workspace_points_at_the_code_server(default_objects: list[dict]) -> None:
    """The webserver and daemon find the code location through the workspace: its host and port are the code
    server's Service, whose selector matches the code server's pods, which listen on that port."""
    workspace = yaml.safe_load(named(default_objects, "ConfigMap", "aggregator-workspace")["data"]["workspace.yaml"])
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    service = named(default_objects, "Service", grpc["host"])
    assert service["spec"]["ports"][0]["port"] == grpc["port"]
    pod = named(default_objects, "Deployment", "aggregator-code-server")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    command = pod["spec"]["containers"][0]["command"]
    assert command[command.index("--port") + 1] == str(grpc["port"])


def test_the_instance_is_deploy_dagster_k8s_yaml(default_objects: list[dict]) -> None:
    """deploy/dagster.k8s.yaml (what test_instance_configs, test_k8s_run_launch and the log tests load) is the
    instance the chart renders; a change on one side only fails here."""
    rendered = named(default_objects, "ConfigMap", "aggregator-dagster-instance")["data"]["dagster.yaml"]
    assert yaml.safe_load(rendered) == yaml.safe_load((DEPLOY / "dagster.k8s.yaml").read_text())


def test_admin_password_comes_from_the_proxy_secret(default_objects: list[dict]) -> None:
    """Regression (defect 4): without AGGREGATOR_ADMIN_PASSWORD the proxy generates one and prints it, and a
    container's stdout is its log. The Deployment sets it from the proxy's own Secret."""
    container = named(default_objects, "Deployment", "aggregator-proxy")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    ref = env["AGGREGATOR_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "aggregator-proxy", "key": "AGGREGATOR_ADMIN_PASSWORD"}
    assert "optional" not in ref, "a missing password must stop the pod, not fall back to a printed one"
    assert env["AGGREGATOR_PROXY_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "aggregator-proxy"


def test_trusted_proxies_are_the_ingress_networks(default_objects: list[dict]) -> None:
    """Regression (defect 5): behind an Ingress every client shares the controller's address unless the proxy
    trusts its X-Forwarded-For. The setting is present, parses as CIDRs, and trusts no more than private ranges."""
    container = named(default_objects, "Deployment", "aggregator-proxy")["spec"]["template"]["spec"]["containers"][0]
    value = {e["name"]: e.get("value") for e in container["env"]}["AGGREGATOR_TRUSTED_PROXIES"]
    networks = [ipaddress.ip_network(cidr.strip()) for cidr in value.split(",")]
    assert networks
    for network in networks:
        assert network.is_private and network.prefixlen >= 8, f"{network}: trusting it lets clients forge their address"


def test_trusted_proxies_are_required(helm: Path, helm_home: Path) -> None:
    result = run_helm(helm, "template", "aggregator", str(CHART), "--set", "proxy.trustedProxies=null", home=helm_home)
    assert result.returncode != 0 and "proxy.trustedProxies" in result.stderr


def test_migrate_runs_once_before_anything_else(default_objects: list[dict]) -> None:
    """Regression (defect 6): no migration step, and the first start raced on schema creation. The chart runs
    `dagster instance migrate` as a pre-install/pre-upgrade hook; its instance ConfigMap is an earlier hook."""
    job = named(default_objects, "Job", "aggregator-migrate")
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--") + 1:] == ["dagster", "instance", "migrate"]
    config = named(default_objects, "ConfigMap", "aggregator-maintenance-instance")
    assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    assert "pre-install" in config["metadata"]["annotations"]["helm.sh/hook"]


def test_one_secret_per_component(default_objects: list[dict]) -> None:
    """Regression (defect 9): one hand-made Secret with the database password went to everything. Each
    workload references only its own Secret; the exceptions are listed (the Dagster instance's, the pipelines'
    environment, the worker token), and the pipelines' secret never reaches the proxy, webserver or daemon."""
    owners: dict[str, set[str]] = {}
    for where, template in pod_specs(default_objects).items():
        for container in template["spec"]["containers"]:
            names = {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                     if "secretKeyRef" in e.get("valueFrom", {})}
            names |= {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
            for name in names:
                owners.setdefault(name, set()).add(where)
    shared = {"aggregator-dagster-db": {"Deployment/aggregator-webserver", "Deployment/aggregator-daemon",
                                        "Deployment/aggregator-code-server", "Deployment/aggregator-metrics"},
              # The pipelines' environment: where pipeline code runs and where the worker opens connections.
              "aggregator-runs": {"Deployment/aggregator-code-server", "Deployment/aggregator-worker"},
              # The proxy's credential for the worker: the two ends of that one connection.
              "aggregator-worker-token": {"Deployment/aggregator-proxy", "Deployment/aggregator-worker"},
              # The spec store as the read-only role: everything that loads specs besides the proxy.
              "aggregator-specs": {"Deployment/aggregator-code-server", "Deployment/aggregator-worker"},
              # The apply Job writes the spec store as its owner: that one key of the proxy's secret (below).
              "aggregator-proxy": {"Deployment/aggregator-proxy", "Job/aggregator-specs-apply"}}
    for name, users in owners.items():
        assert users == shared.get(name, users) and (name in shared or len(users) == 1), f"{name}: {sorted(users)}"
    (job,) = pod_specs(default_objects)["Job/aggregator-specs-apply"]["spec"]["containers"]
    assert not job.get("envFrom")
    assert {e["valueFrom"]["secretKeyRef"]["key"] for e in job["env"] if "valueFrom" in e} == {"AGGREGATOR_PROXY_DB_URL"}
    instance = yaml.safe_load(named(default_objects, "ConfigMap", "aggregator-dagster-instance")["data"]["dagster.yaml"])
    run_secrets = set(instance["run_launcher"]["config"]["env_secrets"])
    assert run_secrets == {"aggregator-dagster-db", "aggregator-runs", "aggregator-compute-logs", "aggregator-specs"}


def test_backup_and_retention_are_scheduled(default_objects: list[dict]) -> None:
    retention = named(default_objects, "CronJob", "aggregator-retention")
    command = retention["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--older-than-days") + 1] == "30"
    backup = named(default_objects, "CronJob", "aggregator-backup")
    container = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "/scripts/backup.sh"]
    scripts = named(default_objects, "ConfigMap", "aggregator-backup-scripts")["data"]
    assert scripts["backup.sh"] == (CHART / "files" / "backup.sh").read_text()
    pvc = named(default_objects, "PersistentVolumeClaim", "aggregator-backups")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_pgbouncer_pools_every_database_in_session_mode_for_dagster(helm: Path, helm_home: Path) -> None:
    objects = render(helm, helm_home, "--set", "pgbouncer.enabled=true")
    ini = named(objects, "ConfigMap", "aggregator-pgbouncer")["data"]["pgbouncer.ini"]
    databases = ini.split("[databases]")[1].split("[pgbouncer]")[0]
    lines = {line.split("=", 1)[0].strip(): line for line in databases.strip().splitlines()}
    assert set(lines) == {"dagster", "warehouse", "aggregator_proxy"}
    # The webserver LISTENs for run events on the dagster database: that needs session pooling.
    assert "pool_mode=session" in lines["dagster"]
    service = named(objects, "Service", "aggregator-pgbouncer")
    deployment = named(objects, "Deployment", "aggregator-pgbouncer")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_chart_renders_for_the_oldest_supported_kubernetes(helm: Path, helm_home: Path) -> None:
    result = run_helm(helm, "template", "aggregator", str(CHART), "--kube-version", KUBERNETES_VERSION,
                      home=helm_home)
    assert result.returncode == 0, result.stderr
    too_old = run_helm(helm, "template", "aggregator", str(CHART), "--kube-version", "1.29", home=helm_home)
    assert too_old.returncode != 0 and "kubeVersion" in too_old.stderr


def test_upload_chunks_pass_the_ingress_and_fit_the_proxy_disk(default_objects: list[dict]) -> None:
    """Regression (issue 19, major 2): ingress-nginx's default 1m body limit refused the 16 MiB upload chunks, and
    uploads (up to 1 GiB) were staged in a 64 Mi emptyDir, whose overflow evicts the pod."""
    annotations = named(default_objects, "Ingress", "aggregator-proxy")["metadata"]["annotations"]
    size = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m") and int(size[:-1]) > 16
    pod = named(default_objects, "Deployment", "aggregator-proxy")["spec"]["template"]["spec"]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    limit = tmp["emptyDir"]["sizeLimit"]
    assert limit.endswith("Gi") and int(limit[:-2]) >= 1
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mount = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}["tmp"]
    assert env["AGGREGATOR_HOME"].startswith(mount + "/")


def test_specs_reach_the_store_through_the_apply_hook_and_no_pod_mounts_them(helm: Path, helm_home: Path) -> None:
    """Issue 19: pods got AGGREGATOR_PIPELINES and each its own copy of the specs; now the spec store is the one
    copy. The operator's files reach it through the apply hook (after the migration, before any pod is
    replaced), and every component that loads specs reads the store: no AGGREGATOR_PIPELINES, no spec mount."""
    objects = render(helm, helm_home, *VARIANTS["specs"])
    specs = named(objects, "ConfigMap", "aggregator-pipelines")
    assert specs["data"] == {"sales.yaml": SAMPLE_SPEC.read_text()}
    job = named(objects, "Job", "aggregator-specs-apply")
    weight = {o["metadata"]["name"]: int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in (
        specs, job, named(objects, "Job", "aggregator-migrate"))}
    assert weight["aggregator-pipelines"] < weight["aggregator-migrate"] < weight["aggregator-specs-apply"]
    # Its NetworkPolicy is a hook too: an ordinary object is updated only after pre-upgrade hooks ran, so on the
    # first upgrade that brings the Job the default deny would keep it from the database.
    policy = named(objects, "NetworkPolicy", "aggregator-specs-apply")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert int(policy["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight["aggregator-specs-apply"]
    for hook in (specs, job, policy):
        assert set(hook["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    apply = command[command.index("--") + 1:]
    assert apply == ["aggregator", "specs", "apply", "/opt/dagster/pipelines", "--no-env-check",
                     "--grant-read", "aggregator_specs_reader"]
    assert [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "pipelines"] == [
        "/opt/dagster/pipelines/sales.yaml"]

    readers = {"Deployment/aggregator-code-server", "Deployment/aggregator-worker"}
    for where, template in pod_specs(objects).items():
        (main,) = template["spec"]["containers"]
        env = {e["name"]: e for e in main.get("env", [])}
        assert "AGGREGATOR_PIPELINES" not in env, where
        if where != "Job/aggregator-specs-apply":
            assert not any(v.get("configMap", {}).get("name") == "aggregator-pipelines"
                           for v in template["spec"].get("volumes", [])), where
        if where in readers:
            assert env["AGGREGATOR_SPECS_DB_URL"]["valueFrom"]["secretKeyRef"] == {
                "name": "aggregator-specs", "key": "AGGREGATOR_SPECS_DB_URL"}, where
    instance = yaml.safe_load(named(objects, "ConfigMap", "aggregator-dagster-instance")["data"]["dagster.yaml"])
    launcher = instance["run_launcher"]["config"]
    assert "aggregator-specs" in launcher["env_secrets"]
    assert not any(v.startswith("AGGREGATOR_PIPELINES=") for v in launcher["env_vars"])
    assert "pipelines" not in json.dumps(launcher["run_k8s_config"])


def test_without_specs_the_job_only_grants_the_reader_and_both_empty_is_refused(
        default_objects: list[dict], helm: Path, helm_home: Path) -> None:
    """Specs managed through the API: applying an empty directory would delete them all, so the Job only grants
    the read-only role. With neither specs nor a role it would do nothing: the render says so."""
    assert not [o for o in default_objects if o["metadata"]["name"] == "aggregator-pipelines"]
    (container,) = named(default_objects, "Job", "aggregator-specs-apply")["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[command.index("--") + 1:] == ["aggregator", "specs", "grant-read", "aggregator_specs_reader"]
    result = run_helm(helm, "template", "dagster", str(CHART), "--set", "specStore.readerRole=", home=helm_home)
    assert result.returncode != 0 and "pipelines.specs and specStore.readerRole are both empty" in result.stderr


def test_uploads_in_object_storage_reach_every_replica_and_the_pipelines(helm: Path, helm_home: Path) -> None:
    """Issue 19: with `uploads.url` every proxy replica stages in the bucket (not its own emptyDir) and may reach it;
    the code server, the worker and run pods get the same location and the bucket's credentials."""
    objects = render(helm, helm_home, *VARIANTS["uploads"])
    want = {"AGGREGATOR_UPLOADS_URL": "s3://aggregator-uploads/prod",
            "AGGREGATOR_UPLOADS_S3_ENDPOINT_URL": "https://minio.storage.svc:9000"}
    for name in ("aggregator-proxy", "aggregator-code-server", "aggregator-worker"):
        (container, *_) = named(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env.get(k) for k in want} == want, name
        assert {"secretRef": {"name": "aggregator-uploads", "optional": True}} in container["envFrom"], name
    instance = yaml.safe_load(named(objects, "ConfigMap", "aggregator-dagster-instance")["data"]["dagster.yaml"])
    launcher = instance["run_launcher"]["config"]
    assert "aggregator-uploads" in launcher["env_secrets"]
    assert {f"{k}={v}" for k, v in want.items()} <= set(launcher["env_vars"])
    proxy_egress = named(objects, "NetworkPolicy", "aggregator-proxy")["spec"]["egress"]
    assert any(rule["ports"] == [{"protocol": "TCP", "port": 443}] for rule in proxy_egress)
    # Without it nothing changes: no uploads variables, no bucket secret, no egress to object storage.
    default = render(helm, helm_home)
    proxy = named(default, "Deployment", "aggregator-proxy")["spec"]["template"]["spec"]["containers"][0]
    assert not any(e["name"].startswith("AGGREGATOR_UPLOADS") for e in proxy["env"]) and "envFrom" not in proxy
    bad = run_helm(helm, "template", "aggregator", str(CHART), "--set", "uploads.url=s3://key:secret@bucket/x",
                   home=helm_home)
    assert bad.returncode != 0 and "s3://bucket/prefix" in bad.stderr and "secret@" not in bad.stderr
