"""The book reads offline: a pinned MathJax served from the built site, and checks that no
page loads anything from the network and that equations render with networking off.

    python -m kdutils.offline fetch                  # MathJax into .cache/, for the build
    python -m kdutils.offline check _build/html      # headless Chromium, networking off
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from kdutils.bookcheck import _text, report
from kdutils.results import ROOT

# MathJax 3, not Debian's libjs-mathjax (2.7.9): Sphinx 7 and myst configure MathJax 3
# (`window.MathJax = {options: {processHtmlClass: ...}}`), which MathJax 2 ignores.
MATHJAX_VERSION = "3.2.2"
# The npm registry's integrity of mathjax-3.2.2.tgz: a changed tarball is refused.
MATHJAX_INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/"
    "FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
# _config.yml's html_static_path names this folder; its mathjax/ lands in _build/html/_static/.
STATIC_DIR = f".cache/mathjax-{MATHJAX_VERSION}"
MATHJAX_PATH = "mathjax/tex-chtml.js"
# What tex-chtml.js loads (components, TeX extensions, CHTML fonts, menu, speech): not the SVG
# or MathML-input builds, which the book never loads.
KEEP = ("tex-chtml.js", "input", "output/chtml.js", "output/chtml", "a11y", "ui", "sre", "adaptors")
PAGE = "notebooks/preliminaries.html"
# Text that only unrendered TeX leaves on a page.
RAW_TEX = ("$$", "\\(", "\\[", "\\begin{")
_CDN = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=[\"']((?:https?:)?//[^\"']+)[\"'][^>]*>",
    re.I,
)


def integrity(path: Path) -> str:
    """The npm-style `sha512-<base64>` integrity string of a file."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_mathjax(root: Path = ROOT) -> Path:
    """Put the pinned MathJax under `root/STATIC_DIR/mathjax` (once) with `npm pack`, checking
    the tarball's integrity; returns the folder."""
    target = root / STATIC_DIR / "mathjax"
    if (target / "tex-chtml.js").exists():
        return target
    if shutil.which("npm") is None:
        raise SystemExit("npm not found: install it (apt-get install npm) to fetch MathJax")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["npm", "pack", f"mathjax@{MATHJAX_VERSION}", "--json", "--pack-destination", tmp],
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = Path(tmp) / json.loads(out.stdout)[0]["filename"]
        if (found := integrity(tarball)) != MATHJAX_INTEGRITY:
            raise SystemExit(f"{tarball.name}: integrity {found} is not the pinned one")
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        staged = Path(tmp) / "mathjax"
        for name in KEEP:
            source = Path(tmp) / "package" / "es5" / name
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, staged / name)
        shutil.copy2(Path(tmp) / "package" / "LICENSE", staged / "LICENSE")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)
    return target


def network_assets(page: str) -> list[str]:
    """URLs that a page's HTML loads from the network (scripts, styles, images, frames);
    links out (<a href>) do not count."""
    return _CDN.findall(page)


def check_site(site: Path) -> list[str]:
    """Every asset that some HTML page or stylesheet of the built site loads from the network."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        if "_sources" not in page.parts:
            problems += [
                f"{page.relative_to(site)}: loads {u}" for u in network_assets(page.read_text())
            ]
    for css in sorted(site.rglob("*.css")):
        for url in re.findall(
            r"url\(\s*[\"']?((?:https?:)?//[^\"')]+)", css.read_text(errors="replace")
        ):
            problems.append(f"{css.relative_to(site)}: loads {url}")
    return problems


def chromium_command(url: str, profile_dir: str, screenshot: Path | None = None) -> list[str]:
    """Headless Chromium that dumps `url`'s DOM (or screenshots it) with networking off: in a
    network namespace of its own where `unshare -n` works (root), and behind a dead proxy."""
    isolate = ["unshare", "-n"] if _can_unshare() else []
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile_dir}",
        "--virtual-time-budget=10000",
        "--window-size=1280,2000",
    ]
    action = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    return [*isolate, "chromium", *flags, *action, url]


def _can_unshare() -> bool:
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def render_offline(page: Path, screenshot: Path | None = None) -> str:
    """The DOM of `page` after its scripts ran in a browser with no network; with
    `screenshot`, also a PNG of it."""
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        cmd = chromium_command(url, profile)
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True).stdout
    if screenshot:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as profile:
            cmd = chromium_command(url, profile, screenshot.resolve())
            subprocess.run(cmd, capture_output=True, timeout=180, check=True)
        if not screenshot.exists():
            raise RuntimeError(f"chromium wrote no screenshot {screenshot}")
    return dom


def math_problems(source: str, dom: str) -> list[str]:
    """What shows that a page's equations did not render: raw TeX in its visible text (code
    blocks aside), or fewer MathJax outputs than the page has math elements."""
    text = _text(re.sub(r"<(pre|code)\b.*?</\1>", " ", dom, flags=re.S | re.I))
    problems = [f"raw TeX {raw!r} in the visible text" for raw in RAW_TEX if raw in text]
    wanted = len(re.findall(r"<(?:span|div)\b[^>]*class=\"[^\"]*\bmath\b", source))
    rendered = dom.count("<mjx-container")
    if wanted == 0:
        problems.append("the page has no math to check")
    elif rendered < wanted:
        problems.append(f"{rendered} MathJax outputs (mjx-container) for {wanted} math elements")
    return problems


def check_offline(site: Path, page: str = PAGE, screenshot: Path | None = None) -> list[str]:
    """All reasons the built `site` does not read offline: network assets anywhere, and
    unrendered equations on `page` in a browser with networking off."""
    problems = check_site(site)
    path = site / page
    if not path.exists():
        return [*problems, f"missing page: {page}"]
    dom = render_offline(path, screenshot)
    return problems + [f"{page}: {p}" for p in math_problems(path.read_text(), dom)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"put MathJax {MATHJAX_VERSION} under {STATIC_DIR}")
    check = sub.add_parser("check", help="check a built site reads offline")
    check.add_argument("site", type=Path, help="the built HTML folder, e.g. _build/html")
    check.add_argument("--page", default=PAGE, help="a page with equations")
    check.add_argument("--screenshot", type=Path, help="also save a PNG of the page")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(f"MathJax {MATHJAX_VERSION}: {fetch_mathjax()}")
        return 0
    problems = check_offline(args.site, args.page, args.screenshot)
    return report(problems, "offline check", f"in {args.site} ({args.page} rendered offline)")


if __name__ == "__main__":
    sys.exit(main())
