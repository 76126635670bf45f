"""The multi-host launch files: launch/tf_config.py, launch/tpu_vm.sh, launch/k8s/.

Fast and without TensorFlow: tf_config.py's functions and its CLI in real processes,
shellcheck over the shell scripts, tpu_vm.sh run against a stub Python, and the
Kubernetes manifest validated against the API schemas bundled with kubernetes-validate
plus the choices that make its workers find each other. shellcheck and
kubernetes-validate are required: a missing one fails the test with the install command.
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
LAUNCH = os.path.join(ROOT, "launch")
TF_CONFIG_PY = os.path.join(LAUNCH, "tf_config.py")
MANIFESTS = sorted(glob.glob(os.path.join(LAUNCH, "k8s", "*.yaml")))
K8S_VERSION = "1.30.0"

sys.path.insert(0, LAUNCH)
import tf_config  # noqa: E402  (launch/tf_config.py)


def _expected(hosts, index):
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}


def _run(*args, env=None, **kwargs):
    """python launch/tf_config.py ARGS in a real process."""
    return subprocess.run([sys.executable, TF_CONFIG_PY, *args], capture_output=True,
                          text=True, timeout=60, env=env, **kwargs)


# --- tf_config.py: functions -------------------------------------------------------------

def test_parse_hosts_keeps_order_and_strips_spaces():
    assert tf_config.parse_hosts("host-a:2222, host-b:2223 ,10.0.0.3:1,[::1]:65535") == [
        "host-a:2222", "host-b:2223", "10.0.0.3:1", "[::1]:65535"]


@pytest.mark.parametrize("text, message", [
    ("", "host list is empty"),
    ("  ", "host list is empty"),
    ("host-a", "has no port"),
    (":2222", "has no port"),
    ("host-a:", "is not a number"),
    ("host-a:http", "is not a number"),
    ("host-a:22.5", "is not a number"),
    ("host-a:0", "out of range 1..65535"),
    ("host-a:65536", "out of range 1..65535"),
    ("host-a:2222,host-a:2222", "appears more than once"),
    ("host-a:2222,", "is empty"),
    ("host-a:2222,,host-b:2222", "is empty"),
    ("grpc://host-a:2222", "without a scheme"),
    ("host a:2222", "without a scheme"),
    ("::1:2222", "IPv6 address in brackets"),
    ("[zz]:2222", "IPv6 address as [address]:port"),
    ("-host:2222", "is not a host name"),
    ("host'a:2222", "is not a host name"),
])
def test_parse_hosts_refuses(text, message):
    with pytest.raises(tf_config.HostError, match=re.escape(message)):
        tf_config.parse_hosts(text)


def test_hosts_from_pattern():
    assert tf_config.hosts_from_pattern("dcgan-train-{i}.dcgan-workers:2222", 3) == [
        "dcgan-train-0.dcgan-workers:2222", "dcgan-train-1.dcgan-workers:2222",
        "dcgan-train-2.dcgan-workers:2222"]


def test_hosts_from_pattern_fills_the_port_too():
    # {i} may stand anywhere; here it makes the ports 2220, 2221.
    assert tf_config.hosts_from_pattern("localhost:222{i}", 2) == [
        "localhost:2220", "localhost:2221"]


@pytest.mark.parametrize("pattern, num_workers, message", [
    ("dcgan-train.dcgan-workers:2222", 2, "has no {i}"),
    ("w-{i}-{j}:2222", 2, "can't be filled in"),
    ("w-{i}-{:2222", 2, "can't be filled in"),
    ("w-{i}", 2, "has no port"),
    ("w-{i}:2222", 0, "at least 1"),
    ("w:{i}", 1, "out of range"),   # port 0
])
def test_hosts_from_pattern_refuses(pattern, num_workers, message):
    with pytest.raises(tf_config.HostError, match=re.escape(message)):
        tf_config.hosts_from_pattern(pattern, num_workers)


def test_build_tf_config_is_tensorflows_format():
    hosts = ["host-a:2222", "host-b:2222"]
    for index in (0, 1):
        assert json.loads(tf_config.build_tf_config(hosts, index)) == _expected(hosts, index)


@pytest.mark.parametrize("hosts, index, message", [
    ([], 0, "empty"),
    (["a:1", "b:1"], 2, "out of range"),
    (["a:1", "b:1"], -1, "out of range"),
    (["a:1", "b:1"], "one", "not an integer"),
    (["a:1", "a:1"], 0, "more than once"),
    (["a:1", "b"], 0, "has no port"),
])
def test_build_tf_config_refuses(hosts, index, message):
    with pytest.raises(tf_config.HostError, match=message):
        tf_config.build_tf_config(hosts, index)


def test_index_from_env():
    assert tf_config.index_from_env("JOB_COMPLETION_INDEX", 2,
                                    {"JOB_COMPLETION_INDEX": "1"}) == 1
    with pytest.raises(tf_config.HostError, match="JOB_COMPLETION_INDEX is not set"):
        tf_config.index_from_env("JOB_COMPLETION_INDEX", 2, {})
    with pytest.raises(tf_config.HostError, match=r"\$RANK=2 is out of range"):
        tf_config.index_from_env("RANK", 2, {"RANK": "2"})
    with pytest.raises(tf_config.HostError, match="not an integer"):
        tf_config.index_from_env("RANK", 2, {"RANK": ""})


def test_export_line_survives_the_shell():
    # Not only JSON: any quote in the value must come through eval unchanged.
    for value in (tf_config.build_tf_config(["a:1", "b:2"], 1), """it's "quoted" $HOME"""):
        out = subprocess.run(["sh", "-c", tf_config.export_line(value) +
                              '; printf %s "$TF_CONFIG"'],
                             capture_output=True, text=True, check=True).stdout
        assert out == value


# --- tf_config.py: the CLI in real processes ----------------------------------------------

def test_cli_prints_the_json():
    result = _run("--hosts=host-a:2222,host-b:2222", "--index=1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == _expected(["host-a:2222", "host-b:2222"], 1)


def test_cli_export_line_sets_tf_config_in_a_shell():
    result = _run("--hosts=host-a:2222,host-b:2222", "--index=0", "--export")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("export TF_CONFIG='")
    script = f"eval {shlex.quote(result.stdout)}; printf %s \"$TF_CONFIG\""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == _expected(["host-a:2222", "host-b:2222"], 0)


def test_cli_pattern_and_index_from_env_as_in_a_kubernetes_pod():
    env = dict(os.environ, JOB_COMPLETION_INDEX="1")
    result = _run("--hosts_pattern=dcgan-train-{i}.dcgan-workers:2222", "--num_workers=2",
                  "--index_from_env=JOB_COMPLETION_INDEX", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == _expected(
        ["dcgan-train-0.dcgan-workers:2222", "dcgan-train-1.dcgan-workers:2222"], 1)


@pytest.mark.parametrize("args, message", [
    (["--hosts=", "--index=0"], "host list is empty"),
    (["--hosts=host-a,host-b:2222", "--index=0"], "'host-a' has no port"),
    (["--hosts=host-a:x", "--index=0"], "port 'x' is not a number"),
    (["--hosts=host-a:99999", "--index=0"], "out of range 1..65535"),
    (["--hosts=host-a:1,host-a:1", "--index=0"], "appears more than once"),
    (["--hosts=host-a:1,host-b:1", "--index=2"], "--index=2 is out of range"),
    (["--hosts=host-a:1", "--index=first"], "is not an integer"),
    (["--hosts=host-a:1", "--index_from_env=DCGAN_TEST_UNSET_VARIABLE"],
     "DCGAN_TEST_UNSET_VARIABLE is not set"),
    (["--hosts=host-a:1"], "--index --index_from_env is required"),
    (["--index=0"], "--hosts --hosts_pattern is required"),
    (["--hosts=host-a:1", "--hosts_pattern=w-{i}:1", "--index=0"], "not allowed with"),
    (["--hosts_pattern=w-{i}:1", "--index=0"], "needs --num_workers"),
    (["--hosts=host-a:1", "--num_workers=1", "--index=0"], "goes with --hosts_pattern"),
    (["--hosts_pattern=w:1", "--num_workers=2", "--index=0"], "has no {i}"),
    (["--hosts=host-a:1", "--index=0", "--export", "--", "true"], "use one of them"),
    (["--hosts=host-a:1", "--index=0", "--"], "nothing after `--`"),
    (["--hosts=host-a:1", "--index=0", "true"], "after `--`"),
    (["--hosts=host-a:1", "--index=0", "--hots=x"], "unrecognized arguments"),
])
def test_cli_bad_input_exits_2_with_a_message(args, message):
    env = {k: v for k, v in os.environ.items() if k != "DCGAN_TEST_UNSET_VARIABLE"}
    result = _run(*args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "usage: tf_config.py" in result.stderr
    assert message in result.stderr, result.stderr


def test_cli_runs_the_command_with_tf_config_in_its_place():
    hosts = ["host-a:2222", "host-b:2222"]
    # The command must see TF_CONFIG (replacing one inherited from the caller), be the
    # same process (exec: a scheduler's signals reach the trainer itself), and hand back
    # its exit status.
    code = ("import json, os, sys; "
            "print(json.dumps({'pid': os.getpid(), 'argv': sys.argv[1:], "
            "'tf_config': os.environ['TF_CONFIG']})); sys.exit(7)")
    env = dict(os.environ, TF_CONFIG="stale")
    process = subprocess.Popen(
        [sys.executable, TF_CONFIG_PY, "--hosts=" + ",".join(hosts), "--index=1", "--",
         sys.executable, "-c", code, "--strategy=multi_worker", "--index=5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 7, stderr
    seen = json.loads(stdout)
    assert seen["pid"] == process.pid
    # Flags after `--` are the command's, even ones that tf_config.py also has.
    assert seen["argv"] == ["--strategy=multi_worker", "--index=5"]
    assert json.loads(seen["tf_config"]) == _expected(hosts, 1)
    assert "worker 1 of 2: host-b:2222" in stderr


def test_cli_command_that_cannot_run_exits_127():
    result = _run("--hosts=host-a:1", "--index=0", "--", "dcgan-no-such-command-here")
    assert result.returncode == 127
    assert "can't run 'dcgan-no-such-command-here'" in result.stderr


def test_tf_config_py_does_not_import_tensorflow():
    # It runs before the trainer, in pods and on hosts that may only have the launcher.
    code = (f"import sys; sys.path.insert(0, {LAUNCH!r}); import tf_config; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


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
        result = _run(*launcher_args, env=dict(os.environ, JOB_COMPLETION_INDEX=str(index)))
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
