"""Run a container of a rendered pod spec on this machine, the way the kubelet would set it up.

- Environment: the container's `env` values, `secretKeyRef`s and `envFrom` secrets (secret values come from the
  test: they are created out of band in a cluster), plus what the kubelet adds for Downward-API-free pods (none).
- Filesystem: the host's root READ-ONLY (`readOnlyRootFilesystem`), with the pod's volumes bound at their mount
  paths: an `emptyDir` is a fresh writable directory, a `configMap` volume is laid out as the kubelet lays it out
  (the keys as symlinks into `..data`, a timestamped directory beside them), a `subPath` mount is the one file.
  Paths the image has but the host does not (/opt/dagster) live on a tmpfs that is remounted read-only after the
  mounts are in place. bubblewrap (`bwrap`, Debian's `bubblewrap`) does the mounting, in a user namespace, as
  the pod's UID: no root needed.
- Network: shared with the host, so loopback services (PostgreSQL, the recording API server) are reachable.

What this does not reproduce: cgroup limits, seccomp, dropped capabilities beyond the user namespace's, and the
service-account token files (the pods we run here mount none: automountServiceAccountToken is false).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = shutil.which("bwrap")


@dataclass
class PodRuntime:
    """The environment and mounts of one container, materialized under `root`."""

    env: dict[str, str]
    binds: list[tuple[Path, str, bool]] = field(default_factory=list)  # host path, mount path, read-only
    uid: int = 10001
    gid: int = 10001
    workdir: str = "/opt/dagster/app"  # the image's WORKDIR

    def command(self, argv: list[str]) -> list[str]:
        """`argv` wrapped in bubblewrap with the pod's root and mounts."""
        if BWRAP is None:
            raise FileNotFoundError("bwrap is not installed: apt-get install bubblewrap (.ci/run installs it)")
        args = [BWRAP, "--die-with-parent", "--unshare-user", "--uid", str(self.uid), "--gid", str(self.gid),
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # Directories the image has and the host may lack: a tmpfs over /opt, read-only once mounted into.
        paths = [m for _, m, _ in self.binds] + [self.workdir]
        image_dirs = sorted({"/" + m.strip("/").split("/")[0] for m in paths if m.startswith("/opt/")})
        for directory in image_dirs:
            args += ["--tmpfs", directory]
        if any(self.workdir.startswith(d + "/") for d in image_dirs):
            args += ["--dir", self.workdir]
        for host, mount, read_only in sorted(self.binds, key=lambda b: b[1].count("/")):
            args += ["--ro-bind" if read_only else "--bind", str(host), mount]
        for directory in image_dirs:
            args += ["--remount-ro", directory]
        return [*args, "--chdir", self.workdir, "--", *argv]

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(self.command(argv), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)


def _configmap_dir(target: Path, data: Mapping[str, str]) -> None:
    """A configMap volume as the kubelet's atomic writer leaves it: `..<timestamp>/` with the files, `..data` a
    symlink to it, and each key a symlink through `..data`."""
    stamped = target / "..2026_01_01_00_00_00.000000000"
    stamped.mkdir(parents=True)
    for key, text in data.items():
        (stamped / key).write_text(text)
    (target / "..data").symlink_to(stamped.name)
    for key in data:
        (target / key).symlink_to(f"..data/{key}")


def materialize(pod_spec: Mapping, container: Mapping, configmaps: Mapping[str, Mapping[str, str]],
                secrets: Mapping[str, Mapping[str, str]], root: Path, base_env: Mapping[str, str]) -> PodRuntime:
    """The container's environment and mounts; `configmaps` and `secrets` by name, as the cluster holds them."""
    env = dict(base_env)
    for source in container.get("envFrom", []):
        ref = source.get("secretRef") or source.get("configMapRef")
        store = secrets if "secretRef" in source else configmaps
        if ref["name"] not in store:
            assert ref.get("optional"), f"envFrom {ref['name']} does not exist and is not optional"
            continue
        env.update(store[ref["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            assert value is not None or ref.get("optional"), f"env {item['name']}: secret {ref} missing"
            if value is not None:
                env[item["name"]] = value
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    runtime = PodRuntime(env=env, uid=int(container.get("securityContext", {}).get("runAsUser", 10001)))
    for index, mount in enumerate(container.get("volumeMounts", [])):
        volume = volumes[mount["name"]]
        host = root / f"{index}-{mount['name']}"
        if "emptyDir" in volume:
            host.mkdir(parents=True)
        elif "configMap" in volume:
            data = configmaps[volume["configMap"]["name"]]
            if "subPath" in mount:
                host.write_text(data[mount["subPath"]])
            else:
                _configmap_dir(host, data)
        else:
            raise NotImplementedError(f"volume kind of {volume} (only emptyDir and configMap are materialized)")
        runtime.binds.append((host, mount["mountPath"], bool(mount.get("readOnly"))))
    assert not any(b[1] == "/" for b in runtime.binds)
    return runtime
