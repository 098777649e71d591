"""The book reads offline: the config serves the pinned MathJax, no page loads a CDN, and the
offline Chromium check tells rendered equations from raw TeX."""

import io
import json
import shutil
import subprocess
import tarfile

import pytest
import yaml

from kdutils import offline
from kdutils.results import ROOT

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
MATHJAX = ROOT / offline.STATIC_DIR / offline.MATHJAX_PATH
BUILT = ROOT / "_build" / "html"


def test_config_serves_the_pinned_mathjax_from_the_site():
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["mathjax_path"] == offline.MATHJAX_PATH
    assert not sphinx["mathjax_path"].startswith(("http:", "https:", "//"))
    assert sphinx["html_static_path"] == [offline.STATIC_DIR]
    assert offline.MATHJAX_VERSION in offline.STATIC_DIR
    # Jupyter Book 1 adds every .js under a root _static/ to every page: MathJax is kept out.
    assert not (ROOT / "_static").exists()
    assert offline.STATIC_DIR.split("/")[0] in (ROOT / ".gitignore").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "html: venv mathjax" in makefile
    assert "-m kdutils.offline fetch" in makefile


def test_network_assets_are_loads_not_links():
    page = (
        '<script src="https://cdn.example.org/mathjax/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/css">'
        '<img alt="x" src="http://example.org/logo.png">'
        '<script src="_static/mathjax/tex-chtml.js"></script>'
        '<a href="https://example.org/paper">a link out</a>'
        "<script>const THEBE_JS_URL = 'https://example.org/thebe.js'</script>"
    )
    assert offline.network_assets(page) == [
        "https://cdn.example.org/mathjax/tex-chtml.js",
        "//fonts.example.org/css",
        "http://example.org/logo.png",
    ]


def test_check_site_names_pages_and_stylesheets_that_load_from_the_network(tmp_path):
    (tmp_path / "ok.html").write_text('<script src="_static/a.js"></script>')
    (tmp_path / "bad.html").write_text('<script src="https://cdn.example.org/a.js"></script>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static/theme.css").write_text("@import url('https://fonts.example.org/f');")
    assert offline.check_site(tmp_path) == [
        "bad.html: loads https://cdn.example.org/a.js",
        "_static/theme.css: loads https://fonts.example.org/f",
    ]


def test_math_problems_tell_raw_tex_from_rendered_math():
    source = '<span class="math notranslate">\\(x\\)</span><div class="math">$$y$$</div>'
    raw = "<body><p>\\(x\\)</p><div>$$y$$</div></body>"
    problems = offline.math_problems(source, raw)
    assert "raw TeX '$$' in the visible text" in problems
    assert "raw TeX '\\\\(' in the visible text" in problems
    assert "0 MathJax outputs (mjx-container) for 2 math elements" in problems
    rendered = "<body><mjx-container>x</mjx-container><mjx-container>y</mjx-container>"
    code = "<pre>print('\\\\(not math\\\\)')</pre>"  # code may show TeX: not a problem
    assert offline.math_problems(source, rendered + code + "</body>") == []
    assert offline.math_problems("<p>no math</p>", "<p>no math</p>") == [
        "the page has no math to check"
    ]


def test_fetch_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path, monkeypatch):
    def fake_npm(cmd, **kwargs):  # `npm pack` writes a tarball, but not the pinned one
        tarball = tmp_path / "pack" / "mathjax-3.2.2.tgz"
        tarball.parent.mkdir(exist_ok=True)
        with tarfile.open(tarball, "w:gz") as tar:
            data = b"not MathJax"
            info = tarfile.TarInfo("package/es5/tex-chtml.js")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        shutil.copy(tarball, cmd[cmd.index("--pack-destination") + 1])
        stdout = json.dumps([{"filename": tarball.name}])
        return subprocess.CompletedProcess(cmd, 0, stdout=stdout)

    monkeypatch.setattr(offline.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(offline.subprocess, "run", fake_npm)
    with pytest.raises(SystemExit, match="is not the pinned one"):
        offline.fetch_mathjax(tmp_path / "root")
    assert not (tmp_path / "root" / offline.STATIC_DIR).exists()


@pytest.mark.skipif(not BUILT.exists(), reason="no built book in _build/html")
def test_built_book_loads_nothing_from_the_network():
    assert offline.check_site(BUILT) == []
    assert (BUILT / "_static" / offline.MATHJAX_PATH).exists()


needs_browser = pytest.mark.skipif(
    shutil.which("chromium") is None or not MATHJAX.exists(),
    reason="needs chromium and the fetched MathJax (make mathjax)",
)
PAGE = """<html><head>{script}</head><body>
<p>Inline <span class="math notranslate nohighlight">\\(\\alpha T^2\\)</span>.</p>
<div class="math notranslate nohighlight">\\[\\mathcal{{L}} = \\alpha\\,\\mathrm{{CE}}\\]</div>
</body></html>"""


@needs_browser
@pytest.mark.parametrize("served", ["locally", "from a CDN"])
def test_offline_chromium_renders_local_mathjax_and_not_a_cdn(tmp_path, served):
    (tmp_path / "_static").symlink_to(MATHJAX.parent.parent)
    src = "_static/" + offline.MATHJAX_PATH
    if served == "from a CDN":
        src = f"https://cdn.jsdelivr.net/npm/mathjax@{offline.MATHJAX_VERSION}/es5/tex-chtml.js"
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(script=f'<script defer src="{src}"></script>'))
    dom = offline.render_offline(page, tmp_path / "page.png")
    assert (tmp_path / "page.png").stat().st_size > 0
    problems = offline.math_problems(page.read_text(), dom)
    if served == "locally":
        assert problems == [] and dom.count("<mjx-container") == 2
    else:  # no network: the CDN's MathJax never loads and the TeX stays raw
        assert "raw TeX '\\\\(' in the visible text" in problems
