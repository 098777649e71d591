"""kdutils.bookcheck finds missing pages, missing images and error outputs."""

from kdutils import bookcheck
from kdutils.profiles import get_profile
from kdutils.results import ROOT
from kdutils.studies import available_studies, get_study


def test_toc_lists_every_chapter():
    files = bookcheck.toc_files(ROOT / "_toc.yml")
    assert files[0] == "book/preface"
    for doc in ("notebooks/results", "notebooks/discussion", "book/references", "book/runs/index"):
        assert doc in files
    pages = bookcheck.expected_pages("smoke")
    smoke = get_profile("smoke")
    conditions = {s: get_study(s).conditions(smoke) for s in available_studies()}
    assert len(pages) == len(files) + len(smoke.alphas) + sum(map(len, conditions.values()))
    assert "book/runs/smoke/alpha_0p5" in pages
    for study, names in conditions.items():
        assert f"notebooks/{study}" in files, f"the chapter of study {study} is not in the toc"
        assert f"book/runs/smoke/{study}-{names[0]}" in pages


def test_check_reports_each_kind_of_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(bookcheck, "check_glued", lambda site, profile: [])
    for doc in bookcheck.expected_pages("smoke"):
        page = tmp_path / f"{doc}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<html><body>fine</body></html>")
    assert bookcheck.check(tmp_path, "smoke") == []

    (tmp_path / "book/runs/smoke/alpha_0p3.html").unlink(missing_ok=True)
    (tmp_path / "book/runs/smoke/alpha_0p5.html").unlink()
    (tmp_path / "notebooks/results.html").write_text(
        '<img src="../_images/ok.png"><img src="../_images/gone.png">'
        '<div class="output traceback"><pre>Traceback (most recent call last):</pre></div>'
    )
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images/ok.png").write_bytes(b"png")
    problems = bookcheck.check(tmp_path, "smoke")
    assert "missing page: book/runs/smoke/alpha_0p5.html" in problems
    assert any("gone.png does not exist" in p for p in problems)
    assert not any("ok.png" in p for p in problems)
    assert any("Traceback" in p for p in problems)


def test_visible_text_drops_tags_and_decodes_entities():
    assert bookcheck._text("<p>97.10% &plusmn; 0.20</p><script>x=1</script>") == " 97.10% ± 0.20 "
