"""The Kubernetes manifests in deploy/kubernetes: valid against the API schemas (strictly: an unknown
field is an error) and consistent with the daemon they run.

The schema check is kubernetes-validate (PyPI), which carries the OpenAPI schemas of each Kubernetes
release; there is no cluster here. The consistency checks tie the manifests to the image and the
daemon: the probe paths exist, the headless Service names the StatefulSet's pods, the admin token
file the daemon is told to read is where the Secret is mounted, the data directory is the volume.
"""

import copy
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33"


def load_all():
    documents = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    return documents


@pytest.fixture(scope="module")
def manifests():
    return load_all()


def container(manifests):
    return manifests["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]


def environment(manifests):
    return {item["name"]: item for item in container(manifests)["env"]}


def test_every_manifest_is_valid_strictly(manifests):
    assert set(manifests) == {"Namespace", "Secret", "Service", "StatefulSet", "PodDisruptionBudget"}
    for document in manifests.values():
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_wrong_field(manifests):
    """The check above can fail: a misspelt field and a wrong type are both refused."""
    misspelt = copy.deepcopy(manifests["StatefulSet"])
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)
    wrong_type = copy.deepcopy(manifests["StatefulSet"])
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_stable_names_through_a_headless_service(manifests):
    statefulset, service = manifests["StatefulSet"], manifests["Service"]
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port = container(manifests)["ports"][0]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert environment(manifests)["OPTIMIZERD_PORT"]["value"] == str(port["containerPort"])
    for document in manifests.values():
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == manifests["Namespace"]["metadata"]["name"]


def test_a_volume_per_replica_holds_the_data_directory(manifests):
    statefulset = manifests["StatefulSet"]
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container(manifests)["volumeMounts"]}
    assert environment(manifests)["OPTIMIZERD_DATA_DIR"]["value"] == mounts["data"]
    assert "data" in claims


def test_the_admin_token_comes_from_the_secret(manifests):
    env = environment(manifests)
    assert "OPTIMIZERD_ADMIN_TOKEN" not in env, "a token in an environment variable shows in kubectl describe"
    token_file = Path(env["OPTIMIZERD_ADMIN_TOKEN_FILE"]["value"])
    spec = manifests["StatefulSet"]["spec"]["template"]["spec"]
    mount = next(m for m in container(manifests)["volumeMounts"] if m["mountPath"] == str(token_file.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    secret = manifests["Secret"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert token_file.name in secret["stringData"]


def test_probes_use_the_daemons_health_routes(manifests):
    """The paths are the ones the daemon serves (openapi.yaml) and the image's own health check uses."""
    spec = yaml.safe_load((REPO / "openapi.yaml").read_text())
    probes = container(manifests)
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["startupProbe"]["httpGet"]["path"] == "/healthz"
    for path in ("/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"]


def test_runs_as_the_images_non_root_user_with_limits(manifests):
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"--uid {pod['securityContext']['runAsUser']}" in dockerfile
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container(manifests)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container(manifests)["resources"]
    assert resources["limits"]["memory"] and resources["requests"]["memory"]
    # The daemon takes its memory budget from the cgroup limit: requests equal to limits keep the
    # pod's memory guaranteed, so the budget is what the node really reserves.
    assert resources["limits"]["memory"] == resources["requests"]["memory"]
