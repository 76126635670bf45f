"""The launch files other than tf_config.py: launch/*.sh (shellcheck, and tpu_vm.sh run
against a stub Python) and launch/k8s/ (validated against the API schemas bundled with
kubernetes-validate, plus the choices that make its workers find each other).
shellcheck and kubernetes-validate are required: a missing one fails the test with the
install command.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
LAUNCH = os.path.join(ROOT, "launch")
MANIFESTS = sorted(glob.glob(os.path.join(LAUNCH, "k8s", "*.yaml")))
K8S_VERSION = "1.30.0"


# --- shell scripts ------------------------------------------------------------------------

def _require(tool, install):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; install it with: {install}")
    return path


def test_shell_scripts_pass_shellcheck():
    shellcheck = _require("shellcheck", "apt-get install -y shellcheck")
    scripts = sorted(glob.glob(os.path.join(LAUNCH, "*.sh")))
    assert scripts, "no launch/*.sh found"
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


STUB_PYTHON = """#!/bin/sh
# Records each call's arguments (one per line, then a blank line) instead of running.
for arg in "$@"; do printf '%s\\n' "$arg"; done >> "$STUB_LOG"
printf '\\n' >> "$STUB_LOG"
case "$*" in *"$STUB_FAIL_ON"*) [ -n "$STUB_FAIL_ON" ] && exit 9;; esac
exit 0
"""


def _run_tpu_vm(tmp_path, *args, fail_on=""):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    env = dict(os.environ, VENV=str(venv), WORKDIR=str(tmp_path / "run"),
               STUB_LOG=str(log), STUB_FAIL_ON=fail_on)
    env.pop("TPU", None)
    result = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_vm.sh"), *args],
                            capture_output=True, text=True, timeout=60, env=env,
                            cwd=str(tmp_path))
    calls = [c.split("\n") for c in log.read_text().split("\n\n") if c] \
        if log.exists() else []
    return result, calls


def test_tpu_vm_script_installs_the_tpu_extra_and_runs_the_trainer(tmp_path):
    # No TPU here: a stub stands in for the venv's python, so this checks what the script
    # asks for, from any working directory, and that the caller's flags come last.
    result, calls = _run_tpu_vm(tmp_path, "--epochs=2", "--dataset=fashion_mnist")
    assert result.returncode == 0, result.stderr
    assert calls[0] == ["-m", "pip", "install", "--upgrade", "pip"]
    assert calls[1][:4] == ["-m", "pip", "install", "-e"] and calls[1][4] == ".[tpu]"
    assert calls[2] == ["-m", "dcgan_dist.train", "--strategy=tpu", "--tpu=local",
                        "--precision=bf16", "--steps_per_loop=50",
                        f"--workdir={tmp_path / 'run'}",
                        "--epochs=2", "--dataset=fashion_mnist"]
    assert len(calls) == 3


def test_tpu_vm_script_stops_when_the_install_fails(tmp_path):
    result, calls = _run_tpu_vm(tmp_path, fail_on=".[tpu]")
    assert result.returncode == 9
    assert not any("dcgan_dist.train" in call for call in calls)


# --- Kubernetes manifest ------------------------------------------------------------------

def _kubernetes_validate():
    try:
        import kubernetes_validate
        import yaml
    except ImportError:
        pytest.fail("kubernetes-validate is not installed; install it with: "
                    "pip install kubernetes-validate")
    return kubernetes_validate, yaml


def _documents(path):
    _, yaml = _kubernetes_validate()
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _one(documents, kind):
    found = [d for d in documents if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _validate(document):
    kubernetes_validate, _ = _kubernetes_validate()
    # strict: unknown fields (a misspelt key that kubectl would drop) are errors too.
    # A kind without a schema raises SchemaNotFoundError here instead of passing.
    return kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_manifests_exist():
    assert MANIFESTS, "no launch/k8s/*.yaml found"


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_manifest_matches_the_kubernetes_api_schemas(path):
    documents = _documents(path)
    assert documents
    for document in documents:
        assert _validate(document) == "1.30", document["kind"]


def test_schema_validation_can_fail():
    kubernetes_validate, _ = _kubernetes_validate()
    job = _one(_documents(os.path.join(LAUNCH, "k8s", "dcgan-multiworker.yaml")), "Job")
    misspelt = json.loads(json.dumps(job))
    misspelt["spec"]["completionmode"] = misspelt["spec"].pop("completionMode")
    wrong_type = json.loads(json.dumps(job))
    wrong_type["spec"]["parallelism"] = "two"
    for bad in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            _validate(bad)


def _split_command(command):
    """The container command -> (tf_config.py flags as a dict, the command after --)."""
    assert command[:2] == ["python", "launch/tf_config.py"], command
    cut = command.index("--")
    flags = dict(arg[2:].split("=", 1) for arg in command[2:cut])
    return flags, command[cut + 1:]


def test_manifest_wires_the_workers_together():
    documents = _documents(os.path.join(LAUNCH, "k8s", "dcgan-multiworker.yaml"))
    service = _one(documents, "Service")
    claim = _one(documents, "PersistentVolumeClaim")
    job = _one(documents, "Job")
    pod = job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    flags, train = _split_command(container["command"])
    num_workers = int(flags["num_workers"])

    # One pod per worker, all at once, each with its index in JOB_COMPLETION_INDEX.
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == num_workers >= 2
    assert flags["index_from_env"] == "JOB_COMPLETION_INDEX"
    # Pod i is <job>-i.<service>: the headless Service named by subdomain selects the pods.
    assert service["spec"]["clusterIP"] == "None"
    assert pod["spec"]["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port = container["ports"][0]["containerPort"]
    assert flags["hosts_pattern"] == (
        f"{job['metadata']['name']}-{{i}}.{service['metadata']['name']}:{port}")
    assert port in [p["port"] for p in service["spec"]["ports"]]
    # A failed worker fails the Job, rather than being restarted alone.
    assert pod["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    # The trainer, in multi-worker mode, with its workdir on the shared claim.
    assert train[:4] == ["python", "-m", "dcgan_dist.train", "--strategy=multi_worker"]
    (workdir,) = [a.split("=", 1)[1] for a in train if a.startswith("--workdir=")]
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert workdir.startswith(mount["mountPath"].rstrip("/") + "/")
    assert container["resources"]["requests"]


def test_manifest_command_gives_each_pod_its_tf_config():
    # The launcher part of the pods' command, run as each pod would run it.
    job = _one(_documents(os.path.join(LAUNCH, "k8s", "dcgan-multiworker.yaml")), "Job")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    flags, _ = _split_command(command)
    launcher_args = command[2:command.index("--")]
    configs = []
    for index in range(int(flags["num_workers"])):
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, command[1]), *launcher_args],
            capture_output=True, text=True, timeout=60,
            env=dict(os.environ, JOB_COMPLETION_INDEX=str(index)))
        assert result.returncode == 0, result.stderr
        configs.append(json.loads(result.stdout))
    assert [c["task"]["index"] for c in configs] == list(range(len(configs)))
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def test_image_is_built_by_the_dockerfile_the_manifest_names():
    with open(os.path.join(LAUNCH, "k8s", "dcgan-multiworker.yaml")) as f:
        manifest_text = f.read()
    with open(os.path.join(LAUNCH, "k8s", "Dockerfile")) as f:
        dockerfile = f.read()
    job = _one(_documents(os.path.join(LAUNCH, "k8s", "dcgan-multiworker.yaml")), "Job")
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    build = f"docker build -f launch/k8s/Dockerfile -t {image} ."
    assert build in manifest_text and build in dockerfile
    # Everything the Dockerfile copies exists (a rename would break the build).
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert os.path.exists(os.path.join(ROOT, source)), line
