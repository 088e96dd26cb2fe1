"""The web app (``python -m mira.app``) in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium), on the shipped mira-demo model, CPU.

One server for the module (started on a free local port, model loaded once), one browser; each test
reloads the page. A screenshot of each finished page is saved as a test artifact
(``$MIRA_TEST_ARTIFACTS``, else pytest's temporary folder; the path is printed).
Without Chromium the tests are skipped, except under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers_inference import REPO_ROOT
from mira.export.gltf import read_glb

EXAMPLE = REPO_ROOT / "docs" / "examples" / "procedural_000000000_blender.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SERVER_START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 120


def _require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    reason = None
    if missing:
        reason = f"{', '.join(missing)} not found: apt-get install -y chromium chromium-driver (Debian)"
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            reason = "selenium is not installed: pip install selenium"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MIRA_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python -m mira.app`` on a free port; yields its URL; stopped (this process only) at the end."""
    _require_browser()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    command = [sys.executable, "-m", "mira.app", "--port", str(port), "--device", "cpu", "--num_frames", "8",
               "--render_size", "64", "--texture_size", "128",
               "--output_dir", str(tmp_path_factory.mktemp("app_outputs"))]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the app exited with code {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"the app did not answer on {url} in {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300",
                     "--use-gl=swiftshader", "--enable-unsafe-swiftshader", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _open(browser, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image_upload input[type=file]"))
    browser.get_log("performance")  # drop the page load's entries


def _generate_and_wait(browser) -> str:
    """Click Generate; the status text once the run has finished (Done or Error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, RUN_TIMEOUT_S).until(
        lambda d: d.find_element(By.ID, "status").text.startswith(("Done", "Error")))
    return browser.find_element(By.ID, "status").text


def _set_number(browser, elem_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = browser.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.TAB)


def _responses(browser) -> list[dict]:
    """Network responses the page received since the last call (Chrome's performance log)."""
    responses = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            responses.append(message["params"]["response"])
    return responses


def _wait_for_response(browser, url_suffix: str, timeout_s: float = 30.0) -> str:
    """The URL of the first successful response whose URL ends with ``url_suffix`` (waits for it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for response in _responses(browser):
            if response["url"].endswith(url_suffix) and response["status"] == 200:
                return response["url"]
        time.sleep(0.25)
    pytest.fail(f"the page never received a file ending in {url_suffix}")


def test_upload_an_example_and_get_a_model_and_a_playing_video(server, browser, artifacts, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, server)
    browser.find_element(By.CSS_SELECTOR, "#image_upload input[type=file]").send_keys(str(EXAMPLE))
    WebDriverWait(browser, 30).until(lambda d: EXAMPLE.name[:12] in d.find_element(By.ID, "image_upload").text)
    _set_number(browser, "mesh_resolution", "32")
    browser.find_element(By.CSS_SELECTOR, "#texture input[type=checkbox]").click()
    status = _generate_and_wait(browser)
    assert status.startswith("Done"), status

    # The viewer asked for the GLB and got one: a glTF 2.0 binary with a textured mesh.
    glb_url = _wait_for_response(browser, "/mesh.glb")
    with urllib.request.urlopen(glb_url, timeout=10) as response:
        content = read_glb(response.read())
    attributes = content.tree["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(attributes)
    assert Image.open(io.BytesIO(content.image())).size == (128, 128)

    # The viewer drew it: its WebGL canvas is not blank.
    canvas = browser.find_element(By.CSS_SELECTOR, "#viewer canvas")
    WebDriverWait(browser, 30).until(lambda d: np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png))
                                                          .convert("L")).std() > 5)

    # The video element plays: time advances, frames of the requested size.
    state = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const video = document.querySelector('#video video');
        if (!video) { done({error: 'no video element'}); return; }
        video.muted = true;
        video.play().catch(e => done({error: String(e)}));
        const start = performance.now();
        (function poll() {
            if (video.currentTime > 0.1 && !video.paused) {
                done({time: video.currentTime, width: video.videoWidth, height: video.videoHeight,
                      ready: video.readyState, src: video.currentSrc});
            } else if (performance.now() - start > 20000) {
                done({error: 'video did not play', time: video.currentTime, ready: video.readyState,
                      paused: video.paused, networkError: video.error && video.error.message});
            } else { setTimeout(poll, 100); }
        })();
    """)
    assert "error" not in state, state
    assert state["width"] == 64 and state["height"] == 64 and state["src"].endswith("video.mp4")

    # The processed input is shown, and the three download buttons give the files.
    assert "/input.png" in browser.find_element(By.CSS_SELECTOR, "#processed_input img").get_attribute("src")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    for elem_id in ("download_glb", "download_obj", "download_ply"):
        browser.find_element(By.ID, elem_id).click()
    expected = {"mesh.glb", "mesh_obj.zip", "mesh.ply"}  # textured OBJ: obj + mtl + png in one zip
    WebDriverWait(browser, 30).until(lambda d: {p.name for p in downloads.iterdir()} == expected)
    assert read_glb((downloads / "mesh.glb").read_bytes()).tree["asset"]["version"] == "2.0"
    with zipfile.ZipFile(downloads / "mesh_obj.zip") as archive:
        assert sorted(archive.namelist()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    assert (downloads / "mesh.ply").read_bytes().startswith(b"ply")
    screenshot = artifacts / "web_app_result.png"
    browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def test_a_file_that_is_not_an_image_gives_a_clear_message(server, browser, artifacts, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    broken = tmp_path / "holiday_photo.png"
    broken.write_text("this is a text file with a .png name\n")
    _open(browser, server)
    browser.find_element(By.CSS_SELECTOR, "#image_upload input[type=file]").send_keys(str(broken))
    WebDriverWait(browser, 30).until(lambda d: "holiday_photo" in d.find_element(By.ID, "image_upload").text)
    status = _generate_and_wait(browser)
    assert status.startswith("Error") and "holiday_photo.png" in status and "not an image" in status, status
    page = browser.page_source
    assert "Traceback" not in page and "/tmp/gradio" not in status
    assert not [r for r in _responses(browser) if r["url"].endswith("/mesh.glb")]
    browser.save_screenshot(str(artifacts / "web_app_bad_upload.png"))


def test_no_input_asks_for_one(server, browser):
    _open(browser, server)
    status = _generate_and_wait(browser)
    assert status == "Error: Upload an image or type a prompt first.", status


def test_the_viewer_shows_the_input_view_upright(browser, tmp_path, artifacts):
    """The app's viewer (mira.app.ui.model_viewer) on a GLB of a ball painted by MIRA's axes: the input
    view's side (+X, red) faces the camera, image right (+Y, blue) is on the right, up (+Z, green) on top."""
    import torch

    from helpers_inference import AnalyticField
    from mira.app.ui import import_gradio, model_viewer
    from mira.export.mesh import extract_mesh, save_mesh
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def paint(points):
        colours = torch.full_like(points, 0.8)
        colours[points[:, 0] > 0.25] = torch.tensor([0.9, 0.1, 0.1], dtype=points.dtype)
        colours[points[:, 1] > 0.25] = torch.tensor([0.1, 0.1, 0.9], dtype=points.dtype)
        colours[points[:, 2] > 0.25] = torch.tensor([0.1, 0.8, 0.1], dtype=points.dtype)
        return colours

    ball = AnalyticField(lambda p: (100 * (0.5 - p.norm(dim=-1))).clamp_min(0), paint)
    glb = save_mesh(extract_mesh(ball, torch.zeros(1, 3, 1, 2, 2), resolution=32, density_threshold=5.0),
                    tmp_path / "axes.glb")
    gr = import_gradio()
    with gr.Blocks() as page:
        model_viewer(gr, value=str(glb), elem_id="viewer")
    port = _free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, allowed_paths=[str(tmp_path)])
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        canvas = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#viewer canvas"))

        def ball_pixels():
            image = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB")).astype(int)
            drawn = np.abs(image - 255).sum(axis=-1) > 30
            drawn[:40] = False  # the block's label and buttons sit over the canvas's top
            saturated = image.max(axis=-1) - image.min(axis=-1) > 80
            return (image, drawn) if saturated.sum() > 500 else None

        image, drawn = WebDriverWait(browser, 30).until(lambda d: ball_pixels())
        from scipy.ndimage import label

        parts, count = label(drawn)  # the ball is the largest blob (the canvas's border lines are thin)
        ball_part = 1 + np.argmax(np.bincount(parts.ravel())[1:])
        rows, cols = np.nonzero(parts == ball_part)
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        centre = image[(top + bottom) // 2, (left + right) // 2]
        upper = image[top + (bottom - top) // 12, (left + right) // 2]
        right_side = image[(top + bottom) // 2, right - (right - left) // 12]
        Image.fromarray(image.astype(np.uint8)).save(artifacts / "web_app_viewer_axes.png")
        assert centre[0] > 150 and centre[1] < 100 and centre[2] < 100, ("front is not red", centre)
        assert upper[1] > 150 and upper[0] < 120, ("top is not green", upper)
        assert right_side[2] > 150 and right_side[0] < 120, ("right is not blue", right_side)
    finally:
        page.close()
