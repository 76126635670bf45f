"""launch/tf_config.py, fast and without TensorFlow: its functions, and its CLI in real
processes. The other launch files: test_launch_scripts.py."""

import glob
import json
import os
import re
import shlex
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
