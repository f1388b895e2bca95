"""Which storage each app process of a deployment really uses, and whether the ones that must be shared are.

A deployment (docker-compose.yml, the rendered Kubernetes manifests) is reduced to its app processes: the
environment each one runs with and the mounts of its container. The path settings are not listed here:
they are what ``webapp/settings.py`` computes under that environment (``env_path`` settings, defaults
included, with the repository root mapped to the image's WORKDIR), so a new path setting, or a default that
moves (FEATURES_ROOT under VAR_DIR), is checked without editing this file.

A path is shared when it lies under a mount whose source every replica and every other app process reaches:
a named docker volume, or a PersistentVolumeClaim with ReadWriteMany. Each process must then see the same
source at the same place under it. A container's own file system, an anonymous volume, an emptyDir or a
ReadWriteOnce claim are private.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import webapp.settings
from webapp import env

ROOT = Path(__file__).resolve().parents[2]

# Path settings that are private to each container on purpose, and why.
PRIVATE_BY_DESIGN = {
    "STATIC_ROOT": "built into the image by collectstatic (deploy/Dockerfile): every container has a copy",
}
# Settings that name where the S3 backend is: every process must agree on them when any uses S3.
S3_SETTINGS = (
    "STORAGE_BACKEND",
    "MEDIA_STORAGE",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_REGION_NAME",
    "STORAGE_PREFIX",
)


@dataclass(frozen=True)
class Mount:
    """A container mount: ``target`` inside the container, ``source`` (volume or claim name) if shared."""

    target: PurePosixPath
    source: str
    shared: bool
    why: str = ""  # for a private mount: what it is (emptyDir, ReadWriteOnce claim, anonymous volume)


@dataclass(frozen=True)
class AppProcess:
    """One app container of a deployment (a compose service, a Kubernetes workload's app container)."""

    name: str
    environment: Mapping[str, str]
    mounts: tuple[Mount, ...] = field(default_factory=tuple)
    replicas: int = 1


def image_workdir() -> PurePosixPath:
    """The app image's WORKDIR: where the repository root (BASE_DIR) is inside a container."""
    match = re.search(r"^WORKDIR\s+(\S+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "deploy/Dockerfile has no WORKDIR"
    return PurePosixPath(match.group(1))


def effective_settings(environment: Mapping[str, str]) -> dict[str, object]:
    """The settings module's values under ``environment``: none of the variables the settings read come from
    this test process (only those of ``environment``)."""
    names = set(env.READ_VARIABLES) | set(environment)
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        os.environ.update(environment)
        env.READ_VARIABLES.clear()
        module = importlib.reload(webapp.settings)
        values = {name: getattr(module, name) for name in dir(module) if name.isupper()}
        values["__read__"] = set(env.READ_VARIABLES)
        return values
    finally:
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(saved)
        importlib.reload(webapp.settings)


def path_settings(environment: Mapping[str, str]) -> dict[str, PurePosixPath]:
    """Every path the settings read from the environment (or default), as the container sees it."""
    values = effective_settings(environment)
    read = values["__read__"]
    assert isinstance(read, set)
    workdir = image_workdir()
    paths = {}
    for name, value in values.items():
        if name in read and isinstance(value, Path):
            try:
                inside = workdir / value.relative_to(ROOT)  # a default under BASE_DIR
            except ValueError:
                inside = PurePosixPath(value.as_posix())
            paths[name] = inside
    return paths


def _mount_of(path: PurePosixPath, mounts: Iterable[Mount]) -> Mount | None:
    """The innermost mount that holds ``path``."""
    holding = [m for m in mounts if path == m.target or m.target in path.parents]
    return max(holding, key=lambda m: len(m.target.parts), default=None)


def storage_problems(processes: Iterable[AppProcess]) -> list[str]:
    """Why the deployment's processes would not see each other's files (empty when they all would)."""
    processes = list(processes)
    problems: list[str] = []
    where: dict[str, dict[str, tuple[str, PurePosixPath]]] = {}
    s3: dict[str, dict[str, object]] = {}
    for process in processes:
        values = effective_settings(process.environment)
        if values["STORAGE_BACKEND"] == "s3":
            s3[process.name] = {name: values[name] for name in S3_SETTINGS}
        for name, path in path_settings(process.environment).items():
            if name in PRIVATE_BY_DESIGN:
                continue
            if name == "MEDIA_ROOT" and values["MEDIA_STORAGE"] == "s3":
                continue  # media are in the bucket: nothing reads or writes MEDIA_ROOT
            mount = _mount_of(path, process.mounts)
            if mount is None:
                problems.append(f"{process.name}: {name}={path} is on the container's own file system")
            elif not mount.shared:
                problems.append(f"{process.name}: {name}={path} is on {mount.source} ({mount.why}): private")
            else:
                relative = PurePosixPath(*path.parts[len(mount.target.parts) :])
                where.setdefault(name, {})[process.name] = (mount.source, relative)
    for name, seen in where.items():
        if len(set(seen.values())) > 1:
            problems.append(f"{name} is not the same shared folder in every process: {seen}")
    if s3 and len(s3) < len(processes):
        problems.append(f"STORAGE_BACKEND=s3 in {sorted(s3)} only: the others read local features elsewhere")
    if len({tuple(sorted(v.items())) for v in s3.values()}) > 1:
        problems.append(f"the app processes use different buckets, prefixes or media storage: {s3}")
    return problems


# docker-compose ------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: object, variables: Mapping[str, str]) -> str:
    """``${NAME:-default}`` as docker compose expands it, with ``variables`` as the shell environment."""
    return _INTERPOLATION.sub(lambda m: variables.get(m.group(1), m.group(2) or ""), str(value))


def is_app_service(service: Mapping[str, object]) -> bool:
    build = service.get("build")
    dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
    return dockerfile == "deploy/Dockerfile" or str(service.get("image", "")).startswith("landmark-search")


def compose_processes(compose: Mapping[str, object], variables: Mapping[str, str]) -> list[AppProcess]:
    """The app services of a parsed docker-compose file, with ``variables`` for its ``${...}``."""
    services = compose["services"]
    assert isinstance(services, dict)
    named_volumes = set(compose.get("volumes") or {})  # type: ignore[arg-type]
    processes = []
    for name, service in services.items():
        if not is_app_service(service):
            continue
        environment = {key: interpolate(value, variables) for key, value in service["environment"].items()}
        mounts = []
        for spec in service.get("volumes", []):
            source, _, rest = str(spec).partition(":")
            target = PurePosixPath(rest.split(":")[0]) if rest else PurePosixPath(source)
            if not rest:  # an anonymous volume: new for every container
                mounts.append(Mount(target, "(anonymous)", False, "an anonymous volume"))
            elif source in named_volumes:
                mounts.append(Mount(target, source, True))
            else:  # a bind mount of the host: shared only by containers on that one host
                mounts.append(Mount(target, source, False, "a host folder"))
        replicas = int(service.get("deploy", {}).get("replicas", 1))
        processes.append(AppProcess(name, environment, tuple(mounts), replicas))
    return processes


# Kubernetes ----------------------------------------------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")


def _pod_spec(workload: Mapping[str, object]) -> dict:
    spec: dict = workload["spec"]  # type: ignore[assignment]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def secret_values(secret: Mapping) -> dict[str, str]:
    """A rendered Secret's values (``data`` is base64, ``stringData`` plain)."""
    values = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return {**values, **secret.get("stringData", {})}


def k8s_processes(objects: Iterable[Mapping[str, object]], app_image: str) -> list[AppProcess]:
    """One process per app container (image ``app_image``) of the rendered manifests."""
    objects = list(objects)
    by_kind: dict[tuple[str, str], Mapping] = {
        (str(o["kind"]), str(o["metadata"]["name"])): o  # type: ignore[index]
        for o in objects
    }
    processes = []
    for workload in objects:
        if workload["kind"] not in WORKLOAD_KINDS:
            continue
        pod = _pod_spec(workload)
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in pod.get("containers", []):
            if not str(container["image"]).startswith(app_image):
                continue
            environment: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    environment.update(by_kind[("ConfigMap", source["configMapRef"]["name"])]["data"])
                if "secretRef" in source:
                    environment.update(secret_values(by_kind[("Secret", source["secretRef"]["name"])]))
            for variable in container.get("env", []):
                environment[variable["name"]] = str(variable.get("value", "(from a reference)"))
            mounts = []
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                target = PurePosixPath(mount["mountPath"])
                if "persistentVolumeClaim" in volume:
                    claim_name = volume["persistentVolumeClaim"]["claimName"]
                    claim = by_kind.get(("PersistentVolumeClaim", claim_name))
                    modes = claim["spec"]["accessModes"] if claim else []
                    source = f"claim {claim_name}" + (f"/{mount['subPath']}" if "subPath" in mount else "")
                    if "ReadWriteMany" in modes:
                        mounts.append(Mount(target, source, True))
                    else:
                        mounts.append(Mount(target, source, False, f"access modes {modes or 'unknown'}"))
                else:
                    kind = next((key for key in volume if key != "name"), "unknown")
                    mounts.append(Mount(target, f"volume {mount['name']}", False, f"a {kind} volume"))
            replicas = int(workload["spec"].get("replicas", 1)) if workload["kind"] == "Deployment" else 1
            name = f"{workload['kind']}/{workload['metadata']['name']}"
            processes.append(AppProcess(name, environment, tuple(mounts), replicas))
    return processes
