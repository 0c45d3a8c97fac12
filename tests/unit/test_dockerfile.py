"""The Dockerfile, checked statically (there is no container engine here).

A small line parser (continuations, comments, stages, global ARGs) reads it; each check returns
the problems it finds, so the same checks are shown to catch a bad Dockerfile as well.
What is checked: pinned base images, a build stage that installs gitsync with pip and a final
stage that copies only its venv, a numeric non-root USER, ``ENTRYPOINT ["gitsync"]``, a Python
HEALTHCHECK (no curl or wget in the final stage), lean and cleaned apt installs, COPY sources that
exist in the repository and are not excluded by .dockerignore.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitsync.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str
    line: int

    def words(self) -> list[str]:
        """The arguments in exec (JSON) form or as shell words."""
        text = self.args.strip()
        if text.startswith("["):
            parsed = json.loads(text)
            assert isinstance(parsed, list)
            return [str(w) for w in parsed]
        return shlex.split(text, comments=False)

    def flags(self) -> dict[str, str]:
        return dict(
            w[2:].split("=", 1) if "=" in w else (w[2:], "")
            for w in self.words()
            if w.startswith("--")
        )


@dataclass
class Stage:
    image: str  # the FROM image with global ARGs substituted
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(text: str) -> Dockerfile:
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue  # blank lines and comments (parser directives included)
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), number)
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.args.partition("=")
            global_args[name.strip()] = default.strip()
        elif instruction.keyword == "FROM":
            words = [w for w in instruction.words() if not w.startswith("--")]
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) > 2 and words[1].lower() == "as" else ""
            stages.append(Stage(image, name))
        else:
            assert stages, f"line {number}: {keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE.read_text())


# -- the checks -----------------------------------------------------------------------------------


def base_image_problems(df: Dockerfile) -> list[str]:
    problems = []
    names = set()
    for stage in df.stages:
        if stage.image in names:
            continue  # FROM an earlier stage
        if "$" in stage.image:
            problems.append(f"{stage.image}: an ARG without a default")
        repo, _, digest = stage.image.partition("@")
        tag = repo.rpartition(":")[2] if ":" in repo.rpartition("/")[2] else ""
        if not digest and (not tag or tag == "latest"):
            problems.append(f"{stage.image}: not pinned (no tag, or latest)")
        elif not digest and not re.search(r"\d+\.\d+\.\d+", tag):
            problems.append(f"{stage.image}: tag {tag!r} is not a specific version")
        if stage.name:
            names.add(stage.name)
    return problems


def user_problems(stage: Stage) -> list[str]:
    users = stage.all("USER")
    if not users:
        return ["the final stage has no USER (it would run as root)"]
    user = users[-1].args.strip()
    if not re.fullmatch(r"\d+(:\d+)?", user):
        return [f"USER {user!r} is not numeric (uid[:gid]); Kubernetes' runAsNonRoot needs a uid"]
    if any(int(part) == 0 for part in user.split(":")):
        return [f"USER {user!r} is root"]
    return []


def curl_wget_problems(stage: Stage) -> list[str]:
    return [
        f"line {i.line}: {i.keyword} uses {tool}"
        for i in stage.instructions
        for tool in ("curl", "wget")
        if re.search(rf"\b{tool}\b", i.args)
    ]


def apt_problems(df: Dockerfile) -> list[str]:
    problems = []
    for stage in df.stages:
        for run in stage.all("RUN"):
            if "apt-get install" not in run.args:
                continue
            if "--no-install-recommends" not in run.args:
                problems.append(f"line {run.line}: apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists/*" not in run.args:
                problems.append(f"line {run.line}: apt lists not cleaned in the same RUN")
            if "apt-get update" not in run.args:
                problems.append(f"line {run.line}: apt-get install without apt-get update first")
    return problems


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [p.strip().rstrip("/") for p in lines if p.strip() and not p.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(Path(prefix).name, pattern.removeprefix("**/"))
        for pattern in patterns
        if not pattern.startswith("!")
        for prefix in prefixes
    )


def copy_source_problems(df: Dockerfile, root: Path, patterns: list[str]) -> list[str]:
    problems = []
    for stage in df.stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            if "from" in copy.flags():
                continue
            sources = [w for w in copy.words() if not w.startswith("--")][:-1]
            for source in sources:
                if not (root / source).exists():
                    problems.append(f"line {copy.line}: COPY source {source} does not exist")
                elif ignored(source, patterns):
                    problems.append(f"line {copy.line}: COPY source {source} is in .dockerignore")
    return problems


# -- the real Dockerfile --------------------------------------------------------------------------


def test_base_images_are_pinned_to_a_version(dockerfile: Dockerfile) -> None:
    assert base_image_problems(dockerfile) == []
    builder, final = dockerfile.stages[0], dockerfile.final
    assert len(dockerfile.stages) >= 2
    assert builder.image == final.image  # the venv's interpreter links into the same base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", final.image)


def test_builder_installs_gitsync_into_a_venv(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stages[0]
    assert builder.name
    runs = " && ".join(r.args for r in builder.all("RUN"))
    created = re.search(r"python -m venv (\S+)", runs)
    assert created, "the builder creates no venv"
    venv = created.group(1)
    assert f"{venv}/bin/pip install --no-cache-dir ." in runs
    (copy,) = dockerfile.final.all("COPY")
    assert copy.flags()["from"] == builder.name
    assert [w for w in copy.words() if not w.startswith("--")] == [venv, venv]


def test_the_ui_files_travel_inside_the_venv(dockerfile: Dockerfile) -> None:
    """gitsync looks for the UI's templates and static files under <venv>/share/gitsync/web."""
    builder = dockerfile.stages[0]
    copied = {tuple(c.words()) for c in builder.all("COPY")}
    for part in ("templates", "static"):
        assert (f"web/{part}", f"/opt/gitsync/share/gitsync/web/{part}") in copied
    env = " ".join(e.args for e in dockerfile.final.all("ENV"))
    assert "GITSYNC_WEB_DIR=/opt/gitsync/share/gitsync/web" in env


def test_final_stage_copies_only_from_the_builder(dockerfile: Dockerfile) -> None:
    for copy in dockerfile.final.all("COPY") + dockerfile.final.all("ADD"):
        assert copy.keyword == "COPY" and "from" in copy.flags(), f"line {copy.line}"


def test_final_user_is_numeric_and_not_root(dockerfile: Dockerfile) -> None:
    assert user_problems(dockerfile.final) == []
    assert dockerfile.final.all("USER")[-1].args == "10001:10001"  # the chart's runAsUser
    assert dockerfile.final.all("WORKDIR")


def test_entrypoint_is_gitsync_serving_on_8080(dockerfile: Dockerfile) -> None:
    (entrypoint,) = dockerfile.final.all("ENTRYPOINT")
    assert entrypoint.args.startswith("[")  # exec form: signals reach gitsync
    assert entrypoint.words() == ["gitsync"]
    (cmd,) = dockerfile.final.all("CMD")
    assert cmd.words() == ["serve", "--listen=0.0.0.0:8080"]
    assert build_parser().parse_args(cmd.words()).command == "serve"
    assert [e.args for e in dockerfile.final.all("EXPOSE")] == ["8080"]


def test_healthcheck_uses_python_not_curl(dockerfile: Dockerfile) -> None:
    (check,) = dockerfile.final.all("HEALTHCHECK")
    assert "CMD" in check.args
    assert "urllib.request" in check.args
    assert "/healthz" in check.args
    assert curl_wget_problems(dockerfile.final) == []


def test_runtime_packages_are_lean_and_apt_lists_cleaned(dockerfile: Dockerfile) -> None:
    assert apt_problems(dockerfile) == []
    installs = " ".join(r.args for r in dockerfile.final.all("RUN") if "apt-get install" in r.args)
    assert re.search(r"\bgit\b", installs)
    assert "openssh-client" in installs


def test_copy_sources_exist_and_are_in_the_build_context(dockerfile: Dockerfile) -> None:
    assert copy_source_problems(dockerfile, ROOT, dockerignore_patterns()) == []


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".venv",
        "tests/unit/test_chart.py",
        ".git",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "gitsync/__pycache__/cli.cpython-311.pyc",
    ):
        assert ignored(path, patterns), path
    for path in ("gitsync/cli.py", "pyproject.toml", "README.md", "web/templates/base.html"):
        assert not ignored(path, patterns), path


# -- the checks catch a bad Dockerfile ------------------------------------------------------------

BAD = """\
# syntax=docker/dockerfile:1
ARG BASE=python:latest
FROM ${BASE} AS build
COPY no-such-dir /src
COPY tests /tests
FROM python:3.11-slim
RUN apt-get update && apt-get install -y git \\
    curl
COPY --from=build /src /src
USER gitsync
ENTRYPOINT gitsync
"""


def test_the_checks_flag_a_bad_dockerfile() -> None:
    df = parse(BAD)
    assert df.global_args == {"BASE": "python:latest"}
    assert [s.image for s in df.stages] == ["python:latest", "python:3.11-slim"]
    assert len(base_image_problems(df)) == 2
    assert user_problems(df.final) == [
        "USER 'gitsync' is not numeric (uid[:gid]); Kubernetes' runAsNonRoot needs a uid"
    ]
    assert user_problems(parse("FROM a:1.2.3\nUSER 0:0\n").final) == ["USER '0:0' is root"]
    assert curl_wget_problems(df.final) == ["line 7: RUN uses curl"]
    assert len(apt_problems(df)) == 2
    problems = copy_source_problems(df, ROOT, dockerignore_patterns())
    assert problems == [
        "line 4: COPY source no-such-dir does not exist",
        "line 5: COPY source tests is in .dockerignore",
    ]
