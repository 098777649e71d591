"""Publishing and project hygiene: GitHub workflows, pre-commit, `make lint`, citation, licences.

The schema checks (check-jsonschema's GitHub and CFF 1.2.0 schemas, vendored in the package,
so no network) also run in `make lint`; here they run again so that pytest alone catches a
broken file. The other tests check what the files must do, which no schema knows.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP = ROOT / ".github" / "actions" / "setup" / "action.yml"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]
BOOK_URL = "https://kdbook.github.io/alpha-distillation/"
REPORT_TITLE = (
    "A Study of Response-Based Knowledge Distillation and the Effects of Alpha on Model Accuracy"
)


def load(path: Path) -> dict:
    # PyYAML reads a bare `on:` key as True: give the workflows' triggers their name back.
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(workflow))


def uses(workflow: dict, action: str) -> list[dict]:
    return [s for s in steps(workflow) if s.get("uses", "").split("@")[0] == action]


def check_jsonschema(schema: str, *files: Path, filetype: str | None = None):
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", schema]
    command += ["--force-filetype", filetype] if filetype else []
    return subprocess.run([*command, *map(str, files)], capture_output=True, text=True)


# --- GitHub workflows --------------------------------------------------------------------


def test_workflows_and_the_setup_action_validate():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {p.name for p in files} == {"ci.yml", "pages.yml", "links.yml", "pdf.yml"}
    done = check_jsonschema("vendor.github-workflows", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    done = check_jsonschema("vendor.github-actions", SETUP)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_validator_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: make test\n")
    assert check_jsonschema("vendor.github-workflows", broken).returncode != 0  # no runs-on


def test_setup_installs_what_ci_run_installs_and_caches_pip():
    setup = load(SETUP)
    (python,) = [s for s in setup["runs"]["steps"] if s.get("uses", "").startswith("actions/setup")]
    assert python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"] == "requirements.txt"
    script = "\n".join(s.get("run", "") for s in setup["runs"]["steps"])
    ci_run = (ROOT / ".ci" / "run").read_text()
    for package in re.findall(r"\bdataset-[\w-]+", ci_run):
        assert f"apt-get install -y -qq {package}" in script, package
    assert "make venv" in script
    assert "KDUTILS_DATA_DIR=" in script  # the tests that need MNIST find the download there


def test_no_workflow_forbids_downloads():
    """On GitHub the loader downloads what it lacks: KDUTILS_NO_DOWNLOAD must not be set."""
    for path in [*WORKFLOWS.glob("*.yml"), SETUP]:
        assert "KDUTILS_NO_DOWNLOAD" not in path.read_text(), path.name


def test_ci_tests_and_builds_the_smoke_book_on_every_push_and_pull_request():
    ci = load(WORKFLOWS / "ci.yml")
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    assert ci["on"]["push"] is None, "every push, every branch"
    script = runs(ci)
    assert "make test" in script and "make book PROFILE=smoke" in script
    makefile = (ROOT / "Makefile").read_text()
    builds = re.findall(r"jupyter-book build [^\n]*", makefile)
    (build,) = [b for b in builds if "--builder" not in b]  # make html and make book (not pdf)
    assert " -W " in build and "$(build-html)" in makefile.split("\nhtml:")[1].split("\n\n")[0]
    html, reports = uses(ci, "actions/upload-artifact")
    assert html["with"]["path"] == "_build/html" and "if" not in html
    assert reports["if"] == "failure()"
    assert "_build/html/reports" in reports["with"]["path"]


def test_pages_builds_committed_default_results_without_training_and_deploys():
    pages = load(WORKFLOWS / "pages.yml")
    assert pages["on"]["push"]["branches"] == ["main"]
    script = runs(pages)
    assert "make html PROFILE=default" in script
    assert (
        "make book" not in script and "kdutils.sweep" not in script and "make sweep" not in script
    )
    (upload,) = uses(pages, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    assert uses(pages, "actions/deploy-pages")
    deploy = pages["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    # The default results the book is built from are committed, and so are its run pages.
    tracked = subprocess.run(
        ["git", "ls-files", "results/default/runs", "book/runs/default"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if tracked.returncode == 0:  # a git checkout
        files = tracked.stdout.split()
        assert any(f.startswith("results/default/runs/") for f in files)
        assert any(f.startswith("book/runs/default/") for f in files)


def test_links_are_checked_on_a_schedule_and_never_in_ci_run():
    links = load(WORKFLOWS / "links.yml")
    assert links["on"]["schedule"]
    assert "jupyter-book build . --builder linkcheck" in runs(links)
    assert "linkcheck" not in (ROOT / ".ci" / "run").read_text()


def test_pdf_is_built_by_its_own_workflow_from_committed_results_and_not_in_ci_run():
    pdf = load(WORKFLOWS / "pdf.yml")
    assert pdf["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in pdf["on"]
    script = runs(pdf)
    assert script.index("make pdf-deps") < script.index("make pdf PROFILE=default")
    assert "make check-pdf" in script and "make sweep" not in script
    (upload,) = uses(pdf, "actions/upload-artifact")
    assert upload["with"]["path"] == "_build/latex/kdbook.pdf"
    assert "make pdf" not in (ROOT / ".ci" / "run").read_text()


def test_ci_run_fetches_mathjax_before_the_tests_and_checks_the_book_reads_offline():
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert ci_run.index("make mathjax") < ci_run.index("make test")
    assert ci_run.index("make check-book") < ci_run.index("make check-offline PROFILE=smoke")


# --- pre-commit and make lint --------------------------------------------------------------


def test_pre_commit_config_is_valid_and_works_offline():
    done = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert all(repo["repo"] == "local" for repo in config["repos"])
    assert all(h["language"] == "system" for h in hooks.values())
    for hook in hooks.values():  # each calls a tool that requirements.txt installs in .venv
        tool = re.search(r"\.venv/bin/([\w-]+)", hook["entry"]).group(1)
        assert (BIN / tool).exists(), tool
    assert {"ruff-check", "ruff-format", "jupytext-sync", "nbstripout"} <= set(hooks)
    assert re.match(hooks["nbstripout"]["exclude"], "book/runs/default/alpha_0p5.ipynb")
    assert "--to ipynb" in hooks["jupytext-sync"]["entry"]


def lint_commands() -> str:
    done = subprocess.run(
        ["make", "-n", "lint"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_make_lint_runs_the_pre_commit_checks_and_make_test_runs_lint():
    commands = lint_commands()
    for needle in (
        "ruff check .",
        "ruff format --check .",
        "nbstripout --verify --keep-id",
        "jupytext --quiet --to ipynb --update",
        "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml",
        "check-jsonschema --builtin-schema vendor.github-actions",
        "vendor.citation-file-format",
        "pre-commit validate-config",
    ):
        assert needle in commands, needle
    checked = re.search(r"nbstripout --verify --keep-id (.*)", commands).group(1).split()
    assert "notebooks/distill.ipynb" in checked
    assert not [p for p in checked if p.startswith("book/runs/")]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\blint\b", makefile, re.M)


def test_run_pages_keep_their_outputs():
    """nbstripout would strip them: they must stay out of its file list (see above)."""
    pages = sorted((ROOT / "book" / "runs").glob("*/*.ipynb"))
    assert pages, "no executed run page in book/runs/<profile>/"
    done = subprocess.run(
        [str(BIN / "nbstripout"), "--verify", "--keep-id", str(pages[0])],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0, "an executed run page should have outputs"


# --- Citation, licences, the How to cite page ----------------------------------------------


@pytest.fixture(scope="module")
def cff() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_cff_validates_against_cff_1_2_0():
    done = check_jsonschema("vendor.citation-file-format", ROOT / "CITATION.cff", filetype="yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_citation_names_the_book_and_the_report_it_restudies(cff):
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == CONFIG["title"]
    assert cff["repository-code"] == REPO_URL
    assert cff["url"] == BOOK_URL
    assert cff["license"] == ["MIT", "CC-BY-4.0"]
    (report,) = cff["references"]
    assert report["title"].strip() == REPORT_TITLE and report["year"] == 2023
    bib = (ROOT / "book" / "references.bib").read_text()
    entry = re.search(r"@misc\{hao2023study,.*?\n\}", bib, re.S).group(0)
    assert REPORT_TITLE in entry and "Hao, N." in entry
    assert report["authors"] == [{"family-names": "Hao", "given-names": "N."}]


def test_licences_say_which_paths_they_cover():
    code, text = (ROOT / "LICENSE").read_text(), (ROOT / "LICENSE-text").read_text()
    assert code.startswith("MIT License") and "kdutils/" in code and "LICENSE-text" in code
    assert "CC BY 4.0" in text and "book/" in text and "results/" in text
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"', pyproject, re.M)


def test_cite_page_is_in_the_appendix_after_the_references(cff):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    (appendix,) = [p for p in toc["parts"] if p["caption"] == "Appendix"]
    files = [c["file"] for c in appendix["chapters"]]
    assert files[files.index("book/references") + 1] == "book/cite"
    page = (ROOT / "book" / "cite.md").read_text()
    assert "```{literalinclude} ../CITATION.cff" in page
    bibtex = re.findall(r"```bibtex\n(.*?)```", page, re.S)
    assert len(bibtex) == 2
    assert f"title        = {{{cff['title']}}}" in bibtex[0]
    assert f"url          = {{{BOOK_URL}}}" in bibtex[0]
    bib = (ROOT / "book" / "references.bib").read_text()
    assert bibtex[1].strip() in bib, "the report's BibTeX must be the bibliography's entry"


def test_readme_links_the_book_colab_and_the_citation():
    readme = (ROOT / "README.md").read_text()
    assert BOOK_URL in readme
    assert f"{REPO_URL}/actions/workflows/ci.yml/badge.svg" in readme
    colab = "https://colab.research.google.com/github/kdbook/alpha-distillation/blob/main/"
    assert f"{colab}notebooks/distill.ipynb" in readme
    assert "(CITATION.cff)" in readme
