"""The project generator: ``copier copy`` and ``copier update`` on this repository.

Each test generates from a temporary git clone of this checkout (its files as
git gives them, committed and tagged ``v<version>``), with Copier's command
line, non-interactively, as docs/template.md and the README tell users to.
Generated projects are checked as a new user would use them: a fresh
virtualenv, the README's commands, ``manage.py serve``, the suite, the smoke
part of their own ``.ci/run``.

Not in generated projects (``_exclude`` in ``copier.yml``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from config import PROJECT_ROOT
from tests.support.cli import ServerProcess
from tests.support.project import assert_suite_passed, copy_checkout

pytestmark = [
    pytest.mark.skipif(
        bool(os.environ.get("TEST_DATABASE_URL")), reason="structural: run once, in the SQLite run"
    ),
    # The template offers the example, so it needs it: a checkout that removed
    # it (tests/tasks/test_removal.py runs this suite in one) is no template.
    pytest.mark.skipif(
        not (PROJECT_ROOT / "app" / "tasks").is_dir(), reason="the example is removed here"
    ),
]

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
MAJOR, MINOR = (int(part) for part in VERSION.split(".")[:2])
NEXT_RELEASE = f"v{MAJOR}.{MINOR + 1}.0"
"""The tag of the skeleton's next release (docs/template.md: PEP 440 tags)."""

SKELETON_ANSWERS = {
    "project_name": "Hybrid service",
    "distribution_name": "tornado-flask-hybrid",
    "import_name": "tornado_flask_hybrid",
    "description": PYPROJECT["project"]["description"],
}
"""This repository's own answers: its twins (``X`` and ``X.jinja``) must agree under them."""

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}

NOT_IN_PROJECTS = (
    "copier.yml",
    "benchmarks",
    "docs/benchmarks.md",
    "docs/template.md",
    "tests/test_template.py",
    "tests/test_benchmarks_smoke.py",
    ".git",
)
"""The skeleton's own files: no generated project has them."""

EXAMPLE = ("app/tasks", "tornado_handlers/tasks", "tests/tasks", "docs/migration.md")
"""The example feature's paths: in a project only when ``include_example``."""

SETTINGS_VARIABLES = ("APP_ENV", "SECRET_KEY", "DATABASE_URL", "PORT", "HOST", "DEBUG")


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without pytest's, the suite's or the service's variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "TEST_")) and key not in SETTINGS_VARIABLES
    }
    env.update(GIT_IDENTITY)
    env.update(extra)
    return env


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=clean_environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copier(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Copier's command line (this interpreter's ``copier``) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "copier", *args],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git clone of this checkout's files, committed and tagged ``v<version>``."""
    clone = copy_checkout(tmp_path_factory.mktemp("template") / "skeleton")
    git("init", "--quiet", "--initial-branch=main", cwd=clone)
    git("add", "--all", cwd=clone)
    git("commit", "--quiet", "--message=the skeleton", cwd=clone)
    git("tag", f"v{VERSION}", cwd=clone)
    return clone


Generate = Callable[..., Path]


@pytest.fixture
def generate(skeleton: Path, tmp_path: Path) -> Generate:
    """``generate(folder, **answers)``: ``copier copy --defaults`` into ``tmp_path/folder``."""

    def run(folder: str, /, **answers: object) -> Path:
        answers = {"project_name": "Order service", **answers}
        data = [f"--data={key}={value}" for key, value in answers.items()]
        result = copier("copy", "--defaults", *data, str(skeleton), str(tmp_path / folder))
        assert result.returncode == 0, result.stderr
        return tmp_path / folder

    return run


def files(root: Path) -> list[Path]:
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


def mentions_of_tasks(project: Path) -> list[str]:
    """Every line of the project's code, templates, migrations and configuration saying "task".

    Everything but ``docs/``, case-insensitively (``asyncio.Task`` would count).
    """
    found = []
    for name in files(project):
        if name.parts[0] == "docs":
            continue
        text = (project / name).read_bytes().decode(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if "task" in line.lower():
                found.append(f"{name}:{number}: {line.strip()}")
    return found


# -- what a project holds ------------------------------------------------------------


def test_the_twins_render_to_this_repositorys_own_files(generate: Generate) -> None:
    project = generate("same", **SKELETON_ANSWERS)
    for name in (
        "config/defaults.py",
        "server/features.py",
        "deploy/nginx.conf",
        "deploy/hybrid.service",
    ):
        assert (project / name).read_text() == (PROJECT_ROOT / name).read_text(), name
    # .ci/run: the skeleton's also installs wrk, for its benchmark smoke test.
    ours = (PROJECT_ROOT / ".ci" / "run").read_text().replace(" wrk nginx", " nginx")
    assert (project / ".ci" / "run").read_text() == ours
    # pyproject.toml: the same but for what differs on purpose.
    rendered = tomllib.loads((project / "pyproject.toml").read_text())
    real = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert rendered["project"].pop("authors") == [{"name": "The authors"}]
    assert rendered["project"].pop("version") == "0.1.0"  # a project's own, from the start
    real["project"].pop("version")
    extras = real["project"]["optional-dependencies"]
    del extras["bench"]  # the benchmarks stay in the skeleton
    extras["test"] = [
        requirement
        for requirement in extras["test"]
        if requirement not in ("tornado-flask-hybrid[bench]", "copier>=9.4")
    ]
    assert rendered == real


def test_a_project_has_its_answers_its_secret_and_none_of_the_skeletons_own(
    generate: Generate,
) -> None:
    project = generate(
        "project",
        project_name="Order service",
        description="Orders, taken and shipped.",
        author_name="Ada Lovelace",
        author_email="ada@example.com",
        port=8123,
    )
    for name in NOT_IN_PROJECTS:
        assert not (project / name).exists(), name
    assert not [name for name in files(project) if name.suffix == ".jinja"]
    for name in EXAMPLE:
        assert (project / name).exists(), name

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == f"v{VERSION}"
    assert answers["project_name"] == "Order service"
    assert answers["distribution_name"] == "order-service"  # derived from the name
    assert answers["import_name"] == "order_service"
    assert "secret_key" not in answers and "reserved_names" not in answers

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["name"] == "order-service"
    assert pyproject["description"] == "Orders, taken and shipped."
    assert pyproject["authors"] == [{"name": "Ada Lovelace", "email": "ada@example.com"}]
    assert set(pyproject["optional-dependencies"]) == {"test", "template", "uvloop", "mutation"}

    defaults = (project / "config" / "defaults.py").read_text()
    assert 'PROJECT_NAME = "Order service"' in defaults
    assert 'SERVICE_NAME = "order_service"' in defaults
    assert "DEFAULT_PORT = 8123" in defaults
    assert "DEFAULT_DATABASE_URL: str | None = None" in defaults

    readme = (project / "README.md").read_text()
    assert readme.startswith("# Order service\n\nOrders, taken and shipped.\n")
    assert "http://127.0.0.1:8123/" in readme and "/tasks" in readme

    secret = re.fullmatch(
        r"SECRET_KEY=([0-9a-f]{64})", (project / ".env").read_text().splitlines()[-1]
    )
    assert secret is not None
    other = generate("other").joinpath(".env").read_text()
    assert secret.group(1) not in other  # made at random for each project
    git("init", "--quiet", cwd=project)
    assert git("check-ignore", ".env", cwd=project).strip() == ".env"
    assert os.access(project / ".ci" / "run", os.X_OK)


def test_without_the_example_nothing_mentions_tasks(generate: Generate) -> None:
    project = generate("bare", include_example="false")
    for name in (*EXAMPLE, *NOT_IN_PROJECTS):
        assert not (project / name).exists(), name
    assert mentions_of_tasks(project) == []
    features = (project / "server/features.py").read_text()
    assert "FEATURES: tuple[Feature, ...] = (\n    # In order:" in features
    assert features.count("\n)\n") == 1 and "import feature" not in features
    assert [path.name for path in (project / "migrations" / "versions").glob("*.py")] == [
        "0001_users.py"
    ]


def test_postgresql_becomes_the_default_database(generate: Generate) -> None:
    project = generate(
        "pg", database="postgresql", database_url="postgresql://orders@db.internal:5432/orders"
    )
    url = "postgresql+psycopg://orders@db.internal:5432/orders"  # the driver the project installs
    settings = subprocess.run(
        [
            sys.executable,
            "-c",
            "from config import load_settings; print(load_settings().database_url)",
        ],
        cwd=project,
        env=clean_environment(),
        capture_output=True,
        text=True,
    )
    assert settings.stdout.strip() == url, settings.stderr
    assert "`postgresql://orders@db.internal:5432/orders`" in (project / "README.md").read_text()


# -- what Copier refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"distribution_name": "Order_Service"}, "is not a distribution name"),
        ({"import_name": "order-service"}, "is not an import-safe name"),
        ({"import_name": "server"}, "the project has a package of that name"),
        ({"import_name": "class"}, "is a Python keyword"),
        ({"port": "70000"}, "the port must be 1 to 65535"),
        (
            {"database": "postgresql", "database_url": "mysql://x@h/db"},
            "must start with postgresql",
        ),
        ({"database": "postgresql", "database_url": "postgresql://u:pw@h/db"}, "password"),
        ({"project_name": 'Say "hi"'}, "may not contain quotes"),
    ],
)
def test_an_invalid_answer_writes_nothing(
    skeleton: Path, tmp_path: Path, answers: dict[str, str], message: str
) -> None:
    data = [f"--data={key}={value}" for key, value in {"project_name": "X", **answers}.items()]
    result = copier("copy", "--defaults", *data, str(skeleton), str(tmp_path / "new"))
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("existing", ["notes.txt", ".git/HEAD", "docs/plan.md"])
def test_a_non_empty_destination_is_refused_and_left_as_it_was(
    skeleton: Path, tmp_path: Path, existing: str
) -> None:
    destination = tmp_path / "existing"
    (destination / existing).parent.mkdir(parents=True)
    (destination / existing).write_text("mine\n")
    result = copier("copy", "--defaults", "--data=project_name=X", str(skeleton), str(destination))
    assert result.returncode != 0
    assert "is not empty: generate into a new folder" in result.stderr.strip().splitlines()[-1]
    assert files(destination) == [Path(existing)]
    assert (destination / existing).read_text() == "mine\n"


def test_overwrite_writes_into_a_non_empty_destination(skeleton: Path, tmp_path: Path) -> None:
    destination = tmp_path / "existing"
    destination.mkdir()
    (destination / "notes.txt").write_text("mine\n")
    result = copier(
        "copy",
        "--defaults",
        "--overwrite",
        "--data=project_name=X",
        str(skeleton),
        str(destination),
    )
    assert result.returncode == 0, result.stderr
    assert (destination / "notes.txt").read_text() == "mine\n" and (
        destination / "manage.py"
    ).exists()


# -- copier update ---------------------------------------------------------------------


def test_update_brings_the_skeletons_change_and_keeps_the_projects(
    skeleton: Path, tmp_path: Path
) -> None:
    # A clone of its own: the module's skeleton stays at its first tag.
    upstream = tmp_path / "upstream"
    git("clone", "--quiet", str(skeleton), str(upstream), cwd=tmp_path)
    project = tmp_path / "service"
    made = copier(
        "copy", "--defaults", "--data=project_name=Order service", str(upstream), str(project)
    )
    assert made.returncode == 0, made.stderr
    git("init", "--quiet", cwd=project)
    git("add", "--all", cwd=project)
    git("commit", "--quiet", "--message=generated", cwd=project)
    secret = (project / ".env").read_text()

    # The project's own edits: one the skeleton leaves alone, one it changes too.
    home = project / "app/templates/public/index.html"
    home.write_text(home.read_text().replace("</ul>", "  <li>Orders</li>\n  </ul>"))
    health = project / "tornado_handlers/health.py"
    health.write_text(health.read_text() + "# the project's line\n")
    git("commit", "--quiet", "--all", "--message=our changes", cwd=project)

    # The skeleton's change, released as the next version.
    nav = upstream / "app/nav.py"
    nav.write_text(nav.read_text() + "# the skeleton's change\n")
    skeleton_health = upstream / "tornado_handlers/health.py"
    skeleton_health.write_text(skeleton_health.read_text() + "# the skeleton's line\n")
    git("commit", "--quiet", "--all", "--message=a change", cwd=upstream)
    git("tag", NEXT_RELEASE, cwd=upstream)

    updated = copier("update", "--defaults", cwd=project)
    assert updated.returncode == 0, updated.stderr
    assert (project / "app/nav.py").read_text().endswith("# the skeleton's change\n")
    assert "<li>Orders</li>" in home.read_text()  # the project's edit survives
    # Both changed the same lines: Git's conflict markers, to resolve as usual.
    assert re.search(
        r"<<<<<<< .*\n# the project's line\n=======\n# the skeleton's line\n>>>>>>> ",
        health.read_text(),
    )
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == NEXT_RELEASE
    assert (project / ".env").read_text() == secret  # never replaced


# -- a project works ----------------------------------------------------------------------


def readme_command(readme: str, after: str) -> str:
    """The first ``sh`` block after the line containing ``after``."""
    block = re.search(re.escape(after) + r".*?```sh\n(.*?)\n```", readme, re.DOTALL)
    assert block is not None, f"no command after {after!r}"
    return block.group(1)


@pytest.mark.parametrize("include_example", [True, False], ids=["example", "bare"])
def test_a_generated_project_installs_serves_and_passes_its_own_tests(
    generate: Generate, include_example: bool
) -> None:
    project = generate("service", include_example=str(include_example).lower())
    readme = (project / "README.md").read_text()

    # The README's test command; its system packages are the CI machine's already.
    test = readme_command(readme, "Install and run the tests")
    packages = "apt-get update && apt-get install -y chromium nginx redis-server && "
    assert test.startswith(packages), test
    env = clean_environment()
    suite = subprocess.run(
        ["bash", "-c", test.removeprefix(packages) + " -q -p no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert_suite_passed(suite)

    # The README's run command, on the embedded default database and .env's secret.
    run = readme_command(readme, "Run the service")
    install, serve = run.rsplit(" && ", 1)
    assert serve == ".venv/bin/python manage.py serve"
    installed = subprocess.run(
        ["bash", "-c", install], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert installed.returncode == 0, installed.stderr
    server = ServerProcess(
        env={**env, "PORT": "0", "AUTORELOAD": "false"},
        manage=[str(project / ".venv" / "bin" / "python"), "manage.py"],
        cwd=project,
    )
    try:
        base = f"http://127.0.0.1:{server.port(count=1)}"
        home = httpx.get(f"{base}/", timeout=10)
        assert home.status_code == 200 and "<h1>Order service</h1>" in home.text
        assert httpx.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"{base}/tasks", timeout=10).status_code == (
            200 if include_example else 404
        )
        assert server.stop(timeout=20)[0] == 0
    finally:
        server.close()
    assert (project / "instance" / "development.db").exists()

    # The smoke part of its own CI script.
    ci = (project / ".ci" / "run").read_text()
    assert subprocess.run(["bash", "-n", str(project / ".ci" / "run")]).returncode == 0
    smoke = ci[ci.index('echo "== smoke') :]
    smoked = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + smoke],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert smoked.returncode == 0, smoked.stdout + smoked.stderr
    assert "server stopped cleanly" in smoked.stdout
