"""Print or apply the TF_CONFIG of one worker of a multi-worker job on several hosts.

    python launch/tf_config.py --hosts=host-a:2222,host-b:2222 --index=0
    eval "$(python launch/tf_config.py --hosts=host-a:2222,host-b:2222 --index=0 --export)"
    python launch/tf_config.py --hosts=host-a:2222,host-b:2222 --index=1 -- \
        python -m dcgan_dist.train --strategy=multi_worker --workdir=/shared/run
    python launch/tf_config.py --hosts_pattern='dcgan-train-{i}.dcgan-workers:2222' \
        --num_workers=2 --index_from_env=JOB_COMPLETION_INDEX -- \
        python -m dcgan_dist.train --strategy=multi_worker --workdir=/shared/run

Run it once on every host, with the same host list everywhere and each host's own
--index (0 is the chief, which writes the outputs). Without a command it prints the JSON
(or, with --export, a shell line that sets it); with `-- command ...` it replaces itself
by the command with TF_CONFIG set, so the command's exit status and signals are the
worker's own. --index_from_env reads the index from a variable a scheduler sets, e.g.
JOB_COMPLETION_INDEX in a Kubernetes Indexed Job (launch/k8s/dcgan-multiworker.yaml), and
--hosts_pattern spells the host list from `{i}` = 0..N-1, e.g. the pods' DNS names.

All workers must see the same --workdir (a shared filesystem) so that a restarted job
resumes from the chief's checkpoints. For N workers on this one host, use launch/local.py.
"""

import argparse
import json
import os
import re
import shlex
import sys

# A DNS name or IPv4 address; and an IPv6 address in brackets, with an optional zone.
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?\]")


class HostError(ValueError):
    """A host list, pattern or index that can't make a TF_CONFIG; the message says why."""


def parse_host(entry):
    """'host:port' or '[ipv6]:port' -> the same, stripped; HostError if malformed."""
    entry = entry.strip()
    if not entry:
        raise HostError("an entry of the host list is empty (a doubled or trailing comma?)")
    if "/" in entry or any(c.isspace() for c in entry):
        raise HostError(f"host {entry!r} is not host:port: write it without a scheme "
                        "(grpc://), path or spaces")
    host, sep, port = entry.rpartition(":")
    if not sep or not host:
        raise HostError(f"host {entry!r} has no port; write it as host:port, "
                        "e.g. host-a:2222")
    if host.startswith("["):
        if not _IPV6.fullmatch(host):
            raise HostError(f"host {entry!r}: write an IPv6 address as [address]:port")
    elif ":" in host:
        raise HostError(f"host {entry!r}: write an IPv6 address in brackets, "
                        "e.g. [::1]:2222")
    elif not _HOST_NAME.fullmatch(host):
        raise HostError(f"host {entry!r}: {host!r} is not a host name or IPv4 address "
                        "(letters, digits, '-', '.' and '_', starting and ending with a "
                        "letter or digit)")
    if not (port.isascii() and port.isdigit()):
        raise HostError(f"host {entry!r}: port {port!r} is not a number")
    if not 1 <= int(port) <= 65535:
        raise HostError(f"host {entry!r}: port {port} is out of range 1..65535")
    return entry


def parse_hosts(text):
    """'a:2222,b:2222' -> ['a:2222', 'b:2222']; HostError if empty, bad or repeated."""
    if not text or not text.strip():
        raise HostError("the host list is empty; give host:port,host:port,...")
    hosts = [parse_host(entry) for entry in text.split(",")]
    _check_distinct(hosts)
    return hosts


def hosts_from_pattern(pattern, num_workers):
    """`pattern` with {i} = 0..num_workers-1: 'w-{i}.svc:2222' -> ['w-0.svc:2222', ...]."""
    if num_workers < 1:
        raise HostError(f"the number of workers is {num_workers}; it must be at least 1")
    if "{i}" not in pattern:
        raise HostError(f"host pattern {pattern!r} has no {{i}}: every worker would get "
                        "the same host; e.g. 'dcgan-train-{i}.dcgan-workers:2222'")
    try:
        hosts = [pattern.format(i=i) for i in range(num_workers)]
    except (KeyError, IndexError, ValueError) as e:
        raise HostError(f"host pattern {pattern!r} can't be filled in ({e!r}); its only "
                        "field may be {i}") from None
    hosts = [parse_host(h) for h in hosts]
    _check_distinct(hosts)
    return hosts


def _check_distinct(hosts):
    seen = set()
    for host in hosts:
        if host in seen:
            # Two tasks on one address can't both listen; TensorFlow would fail later, and
            # less clearly, when the second server starts.
            raise HostError(f"host {host} appears more than once; every worker needs its "
                            "own host:port")
        seen.add(host)


def parse_index(text, num_workers, source="--index"):
    """The task index as an int in 0..num_workers-1; HostError naming `source` otherwise."""
    try:
        index = int(str(text).strip())
    except ValueError:
        raise HostError(f"{source}={text!r} is not an integer") from None
    if not 0 <= index < num_workers:
        raise HostError(f"{source}={index} is out of range: there are {num_workers} "
                        f"worker(s), indices 0..{num_workers - 1}")
    return index


def index_from_env(name, num_workers, environ=None):
    """The task index read from environment variable `name`."""
    environ = os.environ if environ is None else environ
    if name not in environ:
        raise HostError(f"environment variable {name} is not set; set it, or pass --index "
                        "(a Kubernetes Indexed Job sets JOB_COMPLETION_INDEX)")
    return parse_index(environ[name], num_workers, source=f"${name}")


def build_tf_config(hosts, index):
    """The TF_CONFIG JSON text for worker `index` of a cluster of `hosts` (host:port)."""
    hosts = [parse_host(host) for host in hosts]
    if not hosts:
        raise HostError("the host list is empty")
    _check_distinct(hosts)
    index = parse_index(index, len(hosts))
    return json.dumps({"cluster": {"worker": hosts},
                       "task": {"type": "worker", "index": index}})


def export_line(tf_config):
    """A POSIX shell line that sets and exports TF_CONFIG (for `eval`)."""
    return f"export TF_CONFIG={shlex.quote(tf_config)}"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Everything after `--` is a command to run with TF_CONFIG set.")
    hosts = parser.add_mutually_exclusive_group(required=True)
    hosts.add_argument("--hosts", help="comma-separated host:port of workers 0..N-1")
    hosts.add_argument("--hosts_pattern",
                       help="host:port with {i} for the worker index, with --num_workers")
    parser.add_argument("--num_workers", type=int,
                        help="how many workers --hosts_pattern spells out")
    index = parser.add_mutually_exclusive_group(required=True)
    index.add_argument("--index", help="this worker's index, 0..N-1 (0 is the chief)")
    index.add_argument("--index_from_env", metavar="VAR",
                       help="read this worker's index from environment variable VAR")
    parser.add_argument("--export", action="store_true",
                        help="print `export TF_CONFIG='...'` instead of the bare JSON")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then a command to run with TF_CONFIG set")
    args = parser.parse_args(argv)

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.command and args.command[0] != "--":
        # REMAINDER also swallows a mistyped flag; insisting on `--` keeps that an error.
        parser.error(f"unexpected {args.command[0]!r}: put the command to run after `--`")
    if args.command and not command:
        parser.error("nothing after `--`: give the command to run, or drop the `--`")
    if command and args.export:
        parser.error("--export prints a shell line and a command after `--` is run; "
                     "use one of them")
    if args.hosts_pattern is not None and args.num_workers is None:
        parser.error("--hosts_pattern needs --num_workers=N")
    if args.hosts is not None and args.num_workers is not None:
        parser.error("--num_workers goes with --hosts_pattern; with --hosts the list "
                     "itself gives the number of workers")
    try:
        if args.hosts is not None:
            host_list = parse_hosts(args.hosts)
        else:
            host_list = hosts_from_pattern(args.hosts_pattern, args.num_workers)
        if args.index_from_env is not None:
            task_index = index_from_env(args.index_from_env, len(host_list))
        else:
            task_index = parse_index(args.index, len(host_list))
        tf_config = build_tf_config(host_list, task_index)
    except HostError as e:
        parser.error(str(e))

    if not command:
        print(export_line(tf_config) if args.export else tf_config)
        return 0
    os.environ["TF_CONFIG"] = tf_config
    # Logs of a pod or a remote shell should say who this worker is before the command's
    # own output starts (stderr, so a command's stdout stays clean).
    print(f"tf_config | worker {task_index} of {len(host_list)}: {host_list[task_index]}",
          file=sys.stderr, flush=True)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        # 127/126: what a shell returns for a command it can't find / can't run.
        print(f"tf_config.py: can't run {command[0]!r}: {e.strerror}; check the command "
              "after `--` (is it installed and on PATH?)", file=sys.stderr)
        return 127 if isinstance(e, FileNotFoundError) else 126


if __name__ == "__main__":
    sys.exit(main())
