"""The HTML report in a real browser: no console errors, every image loads, not blank."""

import io
import shutil

import pytest
from PIL import Image

from attrib_audit.pipeline import AuditConfig, audit

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); .ci/run installs them",
)


def test_report_renders_in_headless_chromium(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    audit(
        AuditConfig(
            samples=12,
            steps=3,
            method_params={"ig": {"steps": 4}},
            epsilons=[2 / 255, 8 / 255],
            out=str(tmp_path),
            formats=["html"],
            require=["kendall>=0.1"],
        )
    )
    monkeypatch.setenv("SE_OFFLINE", "true")  # never let selenium fetch a driver
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get((tmp_path / "report.html").as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        n_images = driver.execute_script("return document.images.length")
        loaded = driver.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
            ".length"
        )
        assert n_images >= 6 and loaded == n_images
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    finally:
        driver.quit()
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # not a blank page
    assert "PASS" in (tmp_path / "report.html").read_text()
