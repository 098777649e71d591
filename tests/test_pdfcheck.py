"""kdutils.pdfcheck finds every chapter of the toc in the PDF's text, by title; and the
config and Makefile build that PDF with XeLaTeX from Debian's TeX packages."""

import yaml

from kdutils import bookcheck, pdfcheck
from kdutils.results import ROOT


def test_every_toc_file_has_a_title():
    titles = pdfcheck.chapter_titles()
    assert list(titles) == bookcheck.toc_files(ROOT / "_toc.yml")
    assert titles["notebooks/preliminaries"] == "Preliminaries"
    assert titles["notebooks/temperature"] == "Temperature × α"


def test_missing_chapters_ignore_case_spacing_ligatures_and_quotes():
    titles = {
        "a": "Auditing the original study's bugs",
        "b": "Temperature × α",
        "c": "Beyond accuracy: per-class metrics and calibration",
    }
    text = "1 AUDITING THE ORIGINAL STUDY\u2019S BUGS\n2 Temperature ×\nα . . . 7\nBeyond accuracy"
    assert pdfcheck.missing_chapters(text, titles) == ["c"]
    assert pdfcheck.missing_chapters(text + ": per-class metrics and cali\ufb01bration", titles)
    assert not pdfcheck.missing_chapters(text + ": per-class metrics and calibration", titles)


def test_chapter_title_drops_markdown_marks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("---\nkernelspec: {}\n---\n\n# The *`kd_loss`* step\n\n## Not this\n")
    assert pdfcheck.chapter_title(page) == "The kd_loss step"


def test_pdf_is_built_with_xelatex_into_the_checked_file():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    latex = config["latex"]
    assert latex["latex_engine"] == "xelatex"
    assert latex.get("use_jupyterbook_latex", True)  # its class needs bbm.sty: ours stands in
    (bbm,) = config["sphinx"]["config"]["latex_additional_files"]
    assert (ROOT / bbm).name == "bbm.sty" and "\\mathbbm" in (ROOT / bbm).read_text()
    target = latex["latex_documents"]["targetname"].removesuffix(".tex")
    makefile = (ROOT / "Makefile").read_text()
    assert f"-m kdutils.pdfcheck _build/latex/{target}.pdf" in makefile
    assert "jupyter-book build . --builder pdflatex" in makefile
    for deb in ("texlive-xetex", "latexmk", "xindy", "fonts-freefont-otf", "poppler-utils"):
        assert deb in makefile
