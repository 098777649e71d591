"""Check the book's PDF (`make pdf`): every chapter of `_toc.yml` is in it, by title.

python -m kdutils.pdfcheck _build/latex/kdbook.pdf
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

from kdutils.bookcheck import report, toc_files
from kdutils.results import ROOT

QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _normal(text: str) -> str:
    """Text folded for comparison: ligatures split, curly quotes straight, case and spacing
    ignored."""
    text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    return re.sub(r"\s+", " ", text).casefold().strip()


def chapter_title(source: Path) -> str:
    """The first `# ` heading of a MyST page, without Markdown emphasis or code marks."""
    for line in source.read_text().splitlines():
        if line.startswith("# "):
            return re.sub(r"[*`]", "", line[2:]).strip()
    raise ValueError(f"{source} has no '# ' title")


def chapter_titles(root: Path = ROOT) -> dict[str, str]:
    """Docname -> title of every file `_toc.yml` names (globbed run pages are not files)."""
    return {doc: chapter_title(root / f"{doc}.md") for doc in toc_files(root / "_toc.yml")}


def pdf_text(pdf: Path) -> str:
    """The text of a PDF, by poppler's pdftotext."""
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True)
    if done.returncode:
        raise RuntimeError(f"pdftotext {pdf}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode("utf-8", errors="replace")


def missing_chapters(text: str, titles: dict[str, str]) -> list[str]:
    """Docnames whose title the text does not contain."""
    folded = _normal(text)
    return [doc for doc, title in titles.items() if _normal(title) not in folded]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pdf", type=Path, help="the built PDF, e.g. _build/latex/kdbook.pdf")
    args = parser.parse_args(argv)
    if not args.pdf.exists():
        print(f"pdfcheck: no PDF at {args.pdf} (make pdf builds it)")
        return 1
    titles = chapter_titles()
    missing = missing_chapters(pdf_text(args.pdf), titles)
    problems = [f"missing chapter: {doc} ({titles[doc]!r})" for doc in missing]
    return report(problems, "pdfcheck", f"in {args.pdf} ({len(titles)} chapters looked for)")


if __name__ == "__main__":
    sys.exit(main())
