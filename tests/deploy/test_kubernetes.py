"""deploy/k8s renders offline (kubectl kustomize), and its app pods share every path they pass on, talk to
the services the manifests define, and set only settings the code reads."""

from __future__ import annotations

import copy
import shutil
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

from tests.deploy.shared_paths import ROOT, effective_settings, k8s_processes, secret_values, storage_problems
from webapp import front

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/object-storage"]
APP_IMAGE = "landmark-search"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def _render(kustomization: str) -> list[dict]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / kustomization)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[dict]:
    return _render(request.param)


def _named(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_app_pods_share_every_path_they_pass_on(rendered: list[dict]) -> None:
    processes = k8s_processes(rendered, APP_IMAGE)
    assert {p.name for p in processes} == {
        "Deployment/web",
        "Deployment/worker-cpu",
        "Deployment/worker-gpu",
        "Deployment/beat",
        "Job/migrate",
    }
    assert storage_problems(processes) == []


def test_each_role_is_its_own_deployment_on_its_own_queue(rendered: list[dict]) -> None:
    def command(name: str) -> list[str]:
        return _named(rendered, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["command"]

    assert command("web")[0] == "gunicorn"
    assert command("worker-cpu")[command("worker-cpu").index("-Q") + 1] == "cpu"
    assert command("worker-gpu")[command("worker-gpu").index("-Q") + 1] == "gpu"
    gpu = _named(rendered, "Deployment", "worker-gpu")["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    beat = _named(rendered, "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in rendered if o["kind"] == "HorizontalPodAutoscaler"}
    assert scaled == {"web", "worker-cpu"}


def test_app_config_names_the_services_of_the_manifests_and_the_milvus_release(rendered: list[dict]) -> None:
    web = next(p for p in k8s_processes(rendered, APP_IMAGE) if p.name == "Deployment/web")
    services = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "Service"}
    database = urlparse(web.environment["DATABASE_URL"])
    redis = urlparse(web.environment["REDIS_URL"])
    assert database.hostname in services and database.port == 5432
    assert redis.hostname in services and redis.port == 6379
    postgres = _named(rendered, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    secret_name = postgres["envFrom"][0]["secretRef"]["name"]
    postgres_env = secret_values(_named(rendered, "Secret", secret_name))
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]

    chart = yaml.safe_load((K8S / "milvus" / "kustomization.yaml").read_text())["helmCharts"][0]
    values = yaml.safe_load((K8S / "milvus" / chart["valuesFile"]).read_text())
    assert chart["name"] == "milvus" and chart["repo"].startswith("https://zilliztech.github.io/milvus-helm")
    assert values["cluster"]["enabled"] is True
    milvus = urlparse(web.environment["MILVUS_URI"])
    assert milvus.hostname == chart["releaseName"] and milvus.port == values["service"]["port"]
    assert chart["namespace"] == web_namespace(rendered)
    if web.environment.get("STORAGE_BACKEND") == "s3":
        assert urlparse(web.environment["AWS_S3_ENDPOINT_URL"]).hostname == f"{chart['releaseName']}-minio"
        assert web.environment["MEDIA_STORAGE"] == "s3"  # the object-storage overlay puts photos there too


def web_namespace(rendered: list[dict]) -> str:
    return str(_named(rendered, "Deployment", "web")["metadata"]["namespace"])


def test_app_pods_set_only_settings_the_code_reads(rendered: list[dict]) -> None:
    for process in k8s_processes(rendered, APP_IMAGE):
        read = effective_settings(process.environment)["__read__"]
        assert isinstance(read, set)
        unknown = set(process.environment) - read
        assert not unknown, f"{process.name} sets variables no setting reads: {unknown}"


def test_a_private_claim_or_a_pod_without_the_shared_claim_fails_the_check() -> None:
    objects = _render("base")
    once = copy.deepcopy(objects)
    _named(once, "PersistentVolumeClaim", "shared-data")["spec"]["accessModes"] = ["ReadWriteOnce"]
    problems = storage_problems(k8s_processes(once, APP_IMAGE))
    assert any(p.startswith("Deployment/web: FEATURES_ROOT=/data/features is on claim") for p in problems)

    unmounted = copy.deepcopy(objects)
    pod = _named(unmounted, "Deployment", "worker-cpu")["spec"]["template"]["spec"]
    pod["containers"][0]["volumeMounts"] = []
    problems = storage_problems(k8s_processes(unmounted, APP_IMAGE))
    assert "Deployment/worker-cpu: VAR_DIR=/data/var is on the container's own file system" in problems
    assert not any(p.startswith("Deployment/web") for p in problems)


def test_app_pods_run_as_the_images_unprivileged_user(rendered: list[dict]) -> None:
    workloads = [
        o for o in rendered
        if o["kind"] in {"Deployment", "Job", "StatefulSet"}
        and any(c["image"].startswith(APP_IMAGE) for c in o["spec"]["template"]["spec"]["containers"])
    ]  # fmt: skip
    names = {o["metadata"]["name"] for o in workloads}
    assert names >= {"web", "worker-cpu", "worker-gpu", "beat", "migrate"}
    for workload in workloads:
        context = workload["spec"]["template"]["spec"].get("securityContext", {})
        assert context.get("runAsNonRoot") is True and context.get("runAsUser") == 10001, workload["metadata"]
        assert context.get("fsGroup") == 10001  # the shared claim is writable by that user


def test_web_pods_are_reached_through_the_nginx_front_which_names_the_client(rendered: list[dict]) -> None:
    service = _named(rendered, "Service", "web")
    pod = _named(rendered, "Deployment", "web")["spec"]["template"]["spec"]
    containers = {container["name"]: container for container in pod["containers"]}
    nginx = containers["front"]
    assert service["spec"]["ports"][0]["targetPort"] == "front"
    assert {"name": "front", "containerPort": 8080} in nginx["ports"]
    environment = {variable["name"]: variable["value"] for variable in nginx["env"]}
    assert set(front.DEFAULTS) <= set(environment), "an unset variable stays ${...} in nginx's config"
    assert environment["FRONT_LISTEN"] == "8080" and environment["FRONT_UPSTREAM"] == "127.0.0.1:8000"
    app_environment = {variable["name"]: variable.get("value") for variable in containers["app"]["env"]}
    assert app_environment["CLIENT_IP_HEADER"] == "HTTP_X_REAL_IP"
    # the template comes out of the app image, as the image's default server (replacing nginx's own)
    (copy,) = pod["initContainers"]
    assert copy["image"].startswith(APP_IMAGE)
    source, target = copy["command"][-2:]
    assert ROOT / source.removeprefix("/app/") == front.TEMPLATE
    assert target.endswith("/default.conf.template")
    mounts = {mount["name"]: mount["mountPath"] for mount in nginx["volumeMounts"]}
    copied = {mount["name"]: mount["mountPath"] for mount in copy["volumeMounts"]}
    assert mounts.keys() == copied.keys() and list(mounts.values()) == ["/etc/nginx/templates"]
    assert target.startswith(next(iter(copied.values())) + "/")
