"""The HTML report works in a real browser, offline: headless Chromium loads every plot image."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from accelsim.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)")

# Counts images the browser decoded to a non-empty bitmap; --dump-dom prints the title after onload.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const drawn = images.filter((img) => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0);
  document.title = `images ${drawn.length}/${images.length}`;
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def test_every_plot_renders_in_headless_chromium(tmp_path: Path) -> None:
    assert main(["compare", "tiny_cnn", "--timing-only", "--out", str(tmp_path / "out"), "--report"]) == 0
    (folder,) = (tmp_path / "out").glob("tiny_cnn/*")
    html = (folder / "report.html").read_text()
    count = len(re.findall(r"<img ", html))
    assert count == 5
    probed = tmp_path / "probed.html"  # alone in its folder: nothing but the file itself can load
    probed.write_text(html.replace("</body>", PROBE + "\n</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert f"<title>images {count}/{count}</title>" in dom
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1100,3000", f"--screenshot={shot}", (folder / "report.html").as_uri())
    assert shot.stat().st_size > 50_000  # text, tables and plots, not a blank page
