#!/usr/bin/env python3
"""brainmri serve end to end in a real browser: headless Chromium, driven through chromedriver by
Selenium, opens the page, uploads a slice of the bundled sample and checks that the class, the
probability bars and the explanation overlay appear and agree with the API; that the opacity slider
changes the overlay; and that a corrupt upload shows the server's message. Saves a screenshot of
the page with its result as a test artifact.

Exit code 77 (ctest: skipped) when Chromium, chromedriver or Selenium is missing.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

SKIP = 77


def find_browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def post_image(port, path):
    """The API's answer for one file (multipart/form-data, as the page sends it)."""
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{os.path.basename(path)}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def start_server(brainmri, model, log_dir):
    out = open(os.path.join(log_dir, "serve.stdout"), "w")
    err = open(os.path.join(log_dir, "serve.stderr"), "w")
    process = subprocess.Popen([brainmri, "serve", "--model", model, "--port", "0"], stdout=out, stderr=err)
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(out.name) as f:
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", f.read())
        if match:
            return process, int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with open(err.name) as f:
        sys.exit(f"brainmri serve did not start:\n{f.read()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brainmri", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True, help="a slice to upload")
    parser.add_argument("--artifacts", required=True, help="directory for the screenshot and the logs")
    args = parser.parse_args()

    browser = find_browser()
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        print("skipped: Selenium is not installed (pip install selenium)")
        return SKIP
    if not browser or not driver_path:
        print("skipped: Chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
        return SKIP

    os.makedirs(args.artifacts, exist_ok=True)
    server, port = start_server(args.brainmri, args.model, args.artifacts)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1200", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="brainmri-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    failures = []

    def check(condition, message):
        if not condition:
            failures.append(message)
            print("FAIL:", message)

    try:
        wait = WebDriverWait(driver, 60)
        driver.get(f"http://127.0.0.1:{port}/")
        notice = driver.find_element(By.ID, "notice")
        check(notice.is_displayed() and "not a diagnostic device" in notice.text, "the research notice is not shown")
        wait.until(lambda d: "baseline_cnn" in d.find_element(By.ID, "model-info").text)

        # Upload as a user does: the file chooser.
        driver.find_element(By.ID, "file-input").send_keys(os.path.abspath(args.image))
        wait.until(lambda d: d.find_element(By.ID, "prediction").text.strip() != "")
        wait.until(lambda d: d.execute_script(
            "const h = document.getElementById('heatmap'), s = document.getElementById('slice');"
            "return h.complete && h.naturalWidth > 0 && s.complete && s.naturalWidth > 0;"))
        expected = post_image(port, args.image)
        prediction = driver.find_element(By.ID, "prediction")
        shown = prediction.get_attribute("data-class")
        check(shown == expected["prediction"], f"the page shows {shown!r} ({prediction.text!r}), the API says {expected['prediction']!r}")
        check(prediction.text.strip() != "", "the predicted class has no label")
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar-row")
        check(len(bars) == len(expected["classes"]), f"{len(bars)} probability bars for {len(expected['classes'])} classes")
        for bar in bars:
            name = bar.get_attribute("data-class")
            value = float(bar.find_element(By.CLASS_NAME, "value").text.rstrip("%"))
            check(abs(value - 100 * expected["probabilities"][name]) < 0.06,
                  f"bar {name} shows {value}%, the API says {100 * expected['probabilities'][name]:.2f}%")
        predicted_bar = driver.find_element(By.CSS_SELECTOR, "#bars .bar-row.predicted")
        check(predicted_bar.get_attribute("data-class") == expected["prediction"], "the highlighted bar is not the predicted class")
        heatmap = driver.find_element(By.ID, "heatmap")
        check(heatmap.is_displayed(), "the explanation overlay is not shown")
        caption = driver.find_element(By.ID, "explanation-caption").text
        check("HiResCAM" in caption, f"the overlay's caption does not name the method: {caption!r}")
        check(driver.find_element(By.ID, "original").is_displayed(), "the uploaded image is not shown")

        # The opacity slider drives the overlay.
        slider = driver.find_element(By.ID, "opacity")
        slider.send_keys(Keys.END)
        check(abs(float(heatmap.value_of_css_property("opacity")) - 1.0) < 1e-6, "slider at 100% does not show the map fully")
        slider.send_keys(Keys.HOME)
        check(float(heatmap.value_of_css_property("opacity")) == 0.0, "slider at 0% does not hide the map")
        for _ in range(60):
            slider.send_keys(Keys.ARROW_RIGHT)
        check(driver.find_element(By.ID, "opacity-value").text == "60%", "the slider's label does not follow it")
        check(abs(float(heatmap.value_of_css_property("opacity")) - 0.6) < 1e-6, "slider at 60% does not set 0.6")

        # Nothing came from another origin: the page works offline.
        foreign = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith(location.origin) && !n.startsWith('data:') && !n.startsWith('blob:'));")
        check(foreign == [], f"resources from elsewhere: {foreign}")

        driver.execute_script("window.scrollTo(0, 0);")
        screenshot = os.path.join(args.artifacts, "serve_page.png")
        driver.save_screenshot(screenshot)
        print(f"screenshot: {screenshot}")
        print(f"page shows: {prediction.text} ({shown}); API: {json.dumps(expected['probabilities'])}")

        # A corrupt upload: the server's message, and the last result is not presented as this file's.
        corrupt = os.path.join(args.artifacts, "corrupt.jpg")
        with open(args.image, "rb") as f, open(corrupt, "wb") as g:
            g.write(f.read()[:200])
        driver.find_element(By.ID, "file-input").send_keys(os.path.abspath(corrupt))
        wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
        error = driver.find_element(By.ID, "error").text
        check("not an image" in error, f"the error box says {error!r}")
        check(not driver.find_element(By.ID, "result").is_displayed(), "the previous image's result is still shown")
        driver.save_screenshot(os.path.join(args.artifacts, "serve_page_error.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.terminate()
        code = server.wait(timeout=30)
        if code != 0:
            failures.append(f"brainmri serve exited {code} on SIGTERM")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("browser test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
