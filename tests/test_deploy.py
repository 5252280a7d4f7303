"""deploy/: every Kubernetes manifest validates offline (kubernetes-validate, strict), and the
settings that must agree with the server and the exporter do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streamasr.server.inference import triton_contract as tc
from streamasr.server.service.config import ServerConfig

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KUBERNETES = "1.30.0"
"""Oldest Kubernetes release the manifests are written for (the schemas ship in the package)."""
KUSTOMIZE = "kustomize.config.k8s.io/"


def validation_errors(doc: Any, version: str = KUBERNETES) -> list[str]:
    """Why one document is not a valid Kubernetes object (strict: unknown fields are errors)."""
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return ["not a Kubernetes object (no kind/apiVersion)"]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        return [f"{doc['kind']} {where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{doc['kind']}: {exc}"]
    return []


def documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests() -> list[Path]:
    """Every YAML file of deploy/ except the kustomization (not a Kubernetes object)."""
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")


def objects() -> dict[tuple[str, str], Any]:
    """(kind, name) -> document, over every manifest."""
    found = {}
    for path in manifests():
        for doc in documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_validates(path: Path) -> None:
    docs = documents(path)
    assert docs
    errors = [e for doc in docs for e in validation_errors(doc)]
    assert not errors, "\n".join(errors)


BROKEN = [
    ("replicas: two", lambda d: d["spec"].__setitem__("replicas", "two"), "not of type"),
    ("unknown field", lambda d: d["spec"]["template"]["spec"].__setitem__("restart", 1), "restart"),
    ("missing selector", lambda d: d["spec"].pop("selector"), "selector"),
    ("unknown kind", lambda d: d.__setitem__("kind", "Deploymint"), "Deploymint"),
]


@pytest.mark.parametrize(("what", "breaks", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_the_helper_catches_a_broken_document(what: str, breaks: Any, message: str) -> None:
    doc = documents(DEPLOY / "frontend.yaml")[0]
    assert validation_errors(doc) == []
    breaks(doc)
    errors = validation_errors(doc)
    assert errors and message in errors[0], (what, errors)
    assert validation_errors("just text")


def test_kustomization_lists_files_that_exist() -> None:
    (kustomization,) = documents(DEPLOY / "kustomization.yaml")
    assert kustomization["apiVersion"].startswith(KUSTOMIZE)
    listed = kustomization["resources"]
    assert all((DEPLOY / name).is_file() for name in listed)
    assert "auth-secret.example.yaml" not in listed  # a real token is never committed


def _container(deployment: Any) -> Any:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _arg(args: list[str], flag: str) -> str:
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {args}")


def test_frontend_runs_against_triton_with_its_token_from_a_secret() -> None:
    found = objects()
    pod = found[("Deployment", "asr-frontend")]["spec"]["template"]["spec"]
    container = _container(found[("Deployment", "asr-frontend")])
    args = container["args"]
    assert container["command"] == ["asr-server"]
    assert _arg(args, "--inference") == "triton://triton:8001"
    assert _arg(args, "--host") == "0.0.0.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["ASR_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "asr-auth",
        "key": "token",
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    # The grace period covers preStop, the drain and some time to close and exit.
    drain = float(env["ASR_SHUTDOWN_TIMEOUT"]["value"])
    assert drain == ServerConfig(model="x").shutdown_timeout_s
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5
    # Liveness outlasts a drain, so a draining pod (503) is not restarted.
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > pre_stop + drain
    port = container["ports"][0]["containerPort"]
    assert _arg(args, "--port") == str(port)
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "asr-models"


def test_triton_serves_the_generated_repository_on_a_gpu() -> None:
    found = objects()
    container = _container(found[("Deployment", "triton")])
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d+\.\d+-py3", container["image"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    args = container["args"]
    frontend_model = Path(
        _arg(_container(found[("Deployment", "asr-frontend")])["args"], "--model")
    )
    assert _arg(args, "--load-model") == tc.model_name(frontend_model.name, "fp16")
    job = _container(found[("Job", "asr-model-export")])
    assert _arg(args, "--model-repository") == _arg(job["args"], "--triton-repository")
    assert job["args"][0] == frontend_model.name
    ports = {p["name"]: p["port"] for p in found[("Service", "triton")]["spec"]["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}


def test_ingress_keeps_websockets_open_and_hpa_scales_on_sessions() -> None:
    found = objects()
    notes = found[("Ingress", "asr")]["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
    hpa = found[("HorizontalPodAutoscaler", "asr-frontend")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "asr-frontend"
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "asr_sessions_active"
    metrics_source = (Path(__file__).resolve().parents[1] / "server/service/metrics.py").read_text()
    assert '"asr_sessions_active"' in metrics_source
    adapter = found[("ConfigMap", "adapter-config")]["data"]["config.yaml"]
    assert yaml.safe_load(adapter)["rules"][0]["name"]["as"] == "asr_sessions_active"
