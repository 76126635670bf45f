"""The docs can't drift from the code: docs/flags.md is what docs/flags.py generates now,
every --flag the README and docs/*.md name exists, every link and repository path they
name exists, and the README stays a short page whose test command is the one CI runs."""

import difflib
import glob
import importlib.util
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = sorted([README] + glob.glob(os.path.join(ROOT, "docs", "*.md")))
README_MAX_LINES = 150

# Flags that belong to no command, benchmark or launcher of this repository.
OTHER_TOOLS_FLAGS = {
    "logdir",  # tensorboard --logdir
    "write",  # python docs/flags.py --write
}
ABSL_FLAGS = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok"}


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _rel(path):
    return os.path.relpath(path, ROOT)


@pytest.fixture(scope="module")
def flags_doc():
    spec = importlib.util.spec_from_file_location("docs_flags",
                                                  os.path.join(ROOT, "docs", "flags.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def command_flags(flags_doc):
    """{command: {"doc", "flags"}}, each command's flags read in its own subprocess."""
    return flags_doc.dump_all()


def test_flags_md_is_what_flags_py_generates(flags_doc, command_flags):
    generated = flags_doc.render(command_flags)
    written = _read(flags_doc.OUTPUT)
    if written != generated:
        diff = "".join(list(difflib.unified_diff(
            written.splitlines(True), generated.splitlines(True), "docs/flags.md",
            "python docs/flags.py"))[:60])
        pytest.fail("docs/flags.md is out of date; run `python docs/flags.py --write`:\n"
                    + diff)


def test_every_command_has_flags(command_flags):
    for command, info in command_flags.items():
        assert info["flags"], f"{command} defines no flags (a failed import?)"
        assert all(f["help"] for f in info["flags"]), command


def _script_flags():
    """Flags of benchmarks/*.py (absl or argparse) and launch/*.py (argparse): docs name
    them too."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "benchmarks", "*.py")):
        names |= set(re.findall(r"DEFINE_\w+\(\s*[\"'](\w+)[\"']", _read(path)))
    for path in glob.glob(os.path.join(ROOT, "launch", "*.py")) + glob.glob(
            os.path.join(ROOT, "benchmarks", "*.py")):  # article.py's are argparse's
        names |= set(re.findall(r"add_argument\(\s*[\"']--(\w+)[\"']", _read(path)))
    return names


FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_]*)(?![\w-])")


def test_every_flag_the_docs_name_exists(command_flags):
    known = {f["name"] for info in command_flags.values() for f in info["flags"]}
    known |= _script_flags() | OTHER_TOOLS_FLAGS | ABSL_FLAGS
    unknown = []
    for path in DOCS:
        for number, line in enumerate(_read(path).splitlines(), 1):
            for name in FLAG.findall(line):
                if name in known or (name.startswith("no") and name[2:] in known):
                    continue
                unknown.append(f"{_rel(path)}:{number}: --{name}")
    assert not unknown, ("flags no command, benchmark or launcher defines:\n"
                         + "\n".join(unknown))


def _slug(heading):
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path):
    return {_slug(m) for m in re.findall(r"^#+ (.*)$", _read(path), re.M)}


LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


def test_links_point_at_files_and_headings_that_exist():
    broken = []
    for path in DOCS:
        for number, line in enumerate(_read(path).splitlines(), 1):
            for target in (a or b for a, b in LINK.findall(line)):
                if re.match(r"[a-z]+:", target):
                    continue  # a web address
                file_part, _, anchor = target.partition("#")
                target_path = (os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                               if file_part else path)
                if not os.path.exists(target_path):
                    broken.append(f"{_rel(path)}:{number}: {target} (no such file)")
                elif anchor and anchor not in _anchors(target_path):
                    broken.append(f"{_rel(path)}:{number}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


REPO_PATH = re.compile(r"(?<![\w./-])((?:dcgan_dist|benchmarks|launch|tests|docs|\.ci)"
                       r"/[\w./-]*\w)(?:::(\w+)(\.\.\.)?)?")


def test_repository_paths_the_docs_name_exist():
    missing = []
    for path in DOCS:
        for number, line in enumerate(_read(path).splitlines(), 1):
            for name, test, prefix in REPO_PATH.findall(line):
                if "*" in name:
                    continue
                where = f"{_rel(path)}:{number}: {name}"
                full = os.path.join(ROOT, name)
                if not os.path.exists(full):
                    missing.append(where)
                elif test:
                    pattern = rf"^def {test}" + ("" if prefix else r"\b")
                    if not re.search(pattern, _read(full), re.M):
                        missing.append(f"{where}::{test}{prefix}")
    assert not missing, "paths that don't exist (moved?):\n" + "\n".join(missing)


def test_readme_is_short_and_shows_the_test_command_ci_runs():
    readme = _read(README)
    assert len(readme.splitlines()) <= README_MAX_LINES
    ci = [line for line in _read(os.path.join(ROOT, ".ci", "run")).splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] in readme.splitlines(), f".ci/run's test command {ci[-1]!r} is not a " \
                                          "line of README.md"


def test_shell_blocks_parse():
    for path in DOCS:
        for block in re.findall(r"^```sh\n(.*?)^```", _read(path), re.M | re.S):
            result = subprocess.run(["bash", "-n"], input=block, text=True,
                                    capture_output=True)
            assert result.returncode == 0, f"{_rel(path)}:\n{block}\n{result.stderr}"
