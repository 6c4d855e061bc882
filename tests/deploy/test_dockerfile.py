"""deploy/Dockerfile and .dockerignore, checked the way a linter would.

No Docker engine runs here, so these read the Dockerfile: slim Python base
images, a build stage with a compiler that builds Tornado from source and an
image step that proves its C speedups import, dependencies installed from
pyproject.toml before Herald's own source is copied (layer caching), a
non-root USER, a HEALTHCHECK, exec-form ENTRYPOINT ``herald``; and a
.dockerignore that keeps local state out but lets every COPY source in. The
builder's dependency extraction is run for real against pyproject.toml.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass

import pytest

from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "deploy" / "Dockerfile"


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


def _instructions() -> list[Instruction]:
    text = DOCKERFILE.read_text()
    # Join continuation lines; drop comments (not the syntax directive).
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stage = -1
    out = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    return out


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return _instructions()


def _final(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def test_slim_python_bases(instructions: list[Instruction]) -> None:
    args = {i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
            for i in instructions if i.keyword == "ARG" and "=" in i.args}
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) == 2, "a build stage and a runtime stage"
    for line in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)),
                       line.split()[0])
        assert re.fullmatch(r"python:3\.\d+-slim", image), image
    assert froms[0].endswith(" AS builder")
    version = re.fullmatch(r"python:(3\.\d+)-slim", args["PYTHON_IMAGE"]).group(1)
    assert tuple(int(x) for x in version.split(".")) >= (3, 11)


def test_base_image_is_a_build_argument(instructions: list[Instruction]) -> None:
    # A mirror or a locally built base is named with --build-arg PYTHON_IMAGE
    # (docker-compose.yml passes HERALD_PYTHON_IMAGE): every stage starts from
    # the argument, declared before the first FROM so that FROM can read it.
    first_from = next(n for n, i in enumerate(instructions) if i.keyword == "FROM")
    declared = [i.args for i in instructions[:first_from] if i.keyword == "ARG"]
    assert "PYTHON_IMAGE=python:3.12-slim" in declared
    froms = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"], froms


def test_no_syntax_directive() -> None:
    # A `# syntax=` parser directive makes BuildKit pull a frontend image from
    # a registry before the first step: offline builds fail. Directives are
    # only read at the top, before any instruction or other comment, but any
    # such line is refused so that none creeps back in above the others.
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        assert not re.match(r"\s*#\s*syntax\s*=", line, re.IGNORECASE), \
            f"deploy/Dockerfile:{number}: {line}"


def test_tornado_speedups_are_built_and_checked(instructions: list[Instruction]) -> None:
    builder = [i for i in instructions if i.stage == 0]
    runs = " ".join(i.args for i in builder if i.keyword == "RUN")
    assert "gcc" in runs, "the builder needs a C compiler"
    assert "--no-binary tornado" in runs
    final_runs = " ".join(i.args for i in _final(instructions) if i.keyword == "RUN")
    assert "import tornado.speedups" in final_runs, "the build must fail without speedups"
    assert "gcc" not in final_runs, "no compiler in the runtime image"
    assert "--no-index" in final_runs, "the runtime installs exactly the built wheels"


def test_dependencies_before_source(instructions: list[Instruction]) -> None:
    builder = [i for i in instructions if i.stage == 0]
    copies = [(n, i.args) for n, i in enumerate(builder) if i.keyword == "COPY"]
    pyproject = next(n for n, args in copies if args.startswith("pyproject.toml"))
    source = [n for n, args in copies if args.split()[0] in ("common", "services")]
    deps_install = next(n for n, i in enumerate(builder)
                        if i.keyword == "RUN" and "-r requirements.txt" in i.args)
    assert pyproject < deps_install < min(source), "source edits must not rebuild dependencies"


def test_the_builder_copies_every_package_directory(instructions: list[Instruction]) -> None:
    """Every directory pyproject.toml's package-dir maps into the herald
    namespace is in the build context's copy: one left out (testing/, once)
    fails `pip wheel .` in the image build, and nothing else notices."""
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-dir"].values()
    copied = {i.args.split()[0] for i in instructions if i.stage == 0 and i.keyword == "COPY"}
    missing = [d for d in package_dirs if not any(d == c or d.startswith(c + "/")
                                                  for c in copied)]
    assert not missing, f"deploy/Dockerfile does not copy {missing}"


def test_builder_reads_dependencies_from_pyproject(instructions: list[Instruction]) -> None:
    run = next(i.args for i in instructions if i.keyword == "RUN" and "tomllib" in i.args)
    script = re.search(r'python -c "(.+?)" > requirements.txt', run).group(1)
    produced = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.split()
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert produced == [d.replace(" ", "") for d in expected] or produced == expected
    assert any(d.lower().startswith("tornado") for d in produced)


def test_runtime_user_health_and_entrypoint(instructions: list[Instruction]) -> None:
    final = _final(instructions)
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "must not run as root"
    user_at = max(n for n, i in enumerate(final) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in final[user_at + 1:]), "RUN after USER"
    checks = [i.args for i in final if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "CMD" in checks[0] and "HERALD_HEALTHCHECK_URL" in checks[0]
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "HERALD_HEALTHCHECK_URL=http://127.0.0.1:8888/readyz" in env
    entry = [i.args for i in final if i.keyword == "ENTRYPOINT"]
    assert entry == ['["herald"]'], "exec form: herald gets SIGTERM itself, not a shell"
    assert [i.args for i in final if i.keyword == "STOPSIGNAL"] == ["SIGTERM"]


def _ignored(patterns: list[str], path: str) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        match = (fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*")
                 or (pattern.startswith("**/") and fnmatch.fnmatch(path, "*" + pattern[2:])))
        if match:
            ignored = not negate
    return ignored


def test_dockerignore(instructions: list[Instruction]) -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for local_state in (".git", ".venv", "data", "services/api/__pycache__", "tests"):
        assert _ignored(patterns, local_state), f"{local_state} would enter the build context"
    sources = []
    for i in instructions:
        if i.keyword == "COPY" and not i.args.startswith("--from"):
            sources += i.args.split()[:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(patterns, source), f"{source} is COPYed but ignored"
