"""Check a built book's HTML: every page there, every image present, glued numbers shown,
no traceback or error output anywhere.

    python -m kdutils.bookcheck _build/html --profile smoke
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

import yaml

from kdutils.profiles import alpha_slug, get_profile
from kdutils.results import ROOT

ERROR_MARKERS = (
    "Traceback (most recent call last)",
    'class="output traceback',
    'class="output error',
    "output_error",
)


def toc_files(toc_path: Path) -> list[str]:
    """Every `file:` entry of a Jupyter Book `_toc.yml`, root included."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def expected_pages(profile: str, root: Path = ROOT) -> list[str]:
    """Docnames that must be built: the toc's files, one run page per alpha, and one page
    per condition of every study."""
    from kdutils.studies import available_studies, get_study

    config = get_profile(profile)
    runs = [f"book/runs/{profile}/{alpha_slug(a)}" for a in config.alphas]
    for study in available_studies():
        runs += [f"book/runs/{profile}/{study}-{c}" for c in get_study(study).conditions(config)]
    return toc_files(root / "_toc.yml") + runs


def _text(page: str) -> str:
    """Visible text of an HTML page, roughly: tags dropped, entities decoded, spaces squeezed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def check(site: Path, profile: str, root: Path = ROOT) -> list[str]:
    """All problems found in the built book at `site` (an empty list means it passed)."""
    problems = []
    for doc in expected_pages(profile, root):
        if not (site / f"{doc}.html").exists():
            problems.append(f"missing page: {doc}.html")
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        source = page.read_text(errors="replace")
        rel = page.relative_to(site)
        for marker in ERROR_MARKERS:
            if marker in source:
                problems.append(f"{rel}: contains {marker!r}")
        for src in re.findall(r'<img[^>]+src="([^"]+)"', source):
            if src.startswith(("data:", "http://", "https://")):
                continue
            if not (page.parent / src.split("#")[0]).resolve().exists():
                problems.append(f"{rel}: image {src} does not exist")
    problems += check_glued(site, profile)
    return problems


def check_glued(site: Path, profile: str) -> list[str]:
    """The results chapter must show the headline numbers computed from the results files."""
    from kdutils.analysis import report
    from kdutils.results import load_runs, results_dir
    from kdutils.teacher_cache import load_teacher

    prof = get_profile(profile)
    directory = results_dir(profile)
    records = load_runs(directory)
    teachers = [load_teacher(prof, s, directory) for s in prof.teacher_seeds()]
    if not records or None in teachers:
        return [f"no results for profile {profile} under {directory}"]
    page = site / "notebooks" / "results.html"
    if not page.exists():
        return ["missing page: notebooks/results.html"]
    text = _text(page.read_text())
    numbers = report.headline(records, teachers[0].record)
    return [
        f"results.html does not show {key} = {value!r}"
        for key, value in numbers.items()
        if key in ("teacher_test", "alpha1_test", "best_alpha_test") and value not in text
    ]


def report(problems: list[str], check: str, where: str) -> int:
    """Print each problem and a closing line "<check>: N problems <where>"; returns the exit
    status, 1 if there are any."""
    for problem in problems:
        print(problem)
    print(f"{check}: {len(problems)} problems {where}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built HTML folder, e.g. _build/html")
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    return report(check(args.site, args.profile), "bookcheck", f"in {args.site}")


if __name__ == "__main__":
    sys.exit(main())
