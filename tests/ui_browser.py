"""Drive the ``audiodiff ui`` page in headless Chromium with Selenium.

Shared by ``tests/test_ui.py`` (the end-to-end test, which also makes the README's screenshots)
and ``benchmarks/bench_ui.py`` (click-to-sound times).  The browser is the Debian ``chromium``
with its ``chromedriver`` (``make install`` puts them there); nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)

# Record when clip 1's player starts making sound ("playing"; the event does not bubble, so listen
# in the capture phase), then click a button; ``click_to_sound`` reads both times back.
CLICK_JS = """
window.__clicked = performance.now(); window.__playing = null;
if (!window.__listening) {
  document.addEventListener('playing', e => {
    if (window.__playing === null && e.target.closest && e.target.closest('#clip-0')) window.__playing = performance.now();
  }, true);
  window.__listening = true;
}
document.getElementById(arguments[0]).click();
"""


def find_browser() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` paths, or ``None`` where either is missing."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None)
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(out_dir: str | Path, models: Sequence[str], device: Any = None) -> Iterator[str]:
    """Serve the page on 127.0.0.1 at a free port; yield its URL; stop the server on exit."""
    from audiodiff.ui import launch

    app, url = launch(out_dir, host="127.0.0.1", port=free_port(), device=device, models=models)
    try:
        yield url
    finally:
        app.close()


@contextlib.contextmanager
def chromium(width: int = 1200, height: int = 1700, timeout: float = 60) -> Iterator[Any]:
    """A headless Chromium WebDriver that may play audio without a gesture; quit on exit."""
    from selenium import webdriver

    found = find_browser()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
                f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(found[1]), options=options)
    driver.set_page_load_timeout(timeout)
    driver.set_script_timeout(timeout)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The page in a driver: fill fields, click, wait for results and messages."""

    def __init__(self, driver: Any, url: str, timeout: float = 120):
        self.driver, self.url, self.timeout = driver, url, timeout

    def wait(self, condition, timeout: float | None = None, message: str = "") -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout or self.timeout, poll_frequency=0.05).until(
            lambda d: condition(), message)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, elem_id: str) -> str:
        return self.find(f"#{elem_id}").text

    def open(self) -> None:
        """Load the page and wait until the chosen model is described."""
        self.driver.get(self.url)
        self.wait(lambda: " Hz" in self.text("model-info"), message="the model was never described")

    def choose_model(self, name: str) -> None:
        """Pick ``name`` in the model box and wait for its description."""
        from selenium.webdriver.common.keys import Keys

        box = self.find("#model input")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(name)
        box.send_keys(Keys.ENTER)
        self.wait(lambda: self.text("model-info").startswith(name + ":"), message=f"model {name} was never described")

    def fill(self, elem_id: str, value: Any) -> None:
        """Replace the text of the field ``elem_id`` (a textbox or a number)."""
        from selenium.webdriver.common.keys import Keys

        field = self.find(f"#{elem_id} textarea, #{elem_id} input")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(str(value))

    def value(self, elem_id: str) -> str:
        """The current text of the field ``elem_id``."""
        return self.find(f"#{elem_id} textarea, #{elem_id} input").get_attribute("value")

    def click_example(self, text: str) -> None:
        """Click the example prompt ``text``."""
        from selenium.webdriver.common.by import By

        self.wait(lambda: self.driver.find_elements(By.XPATH, f"//*[@id='examples']//button[normalize-space()='{text}']"),
                  30, f"no example {text!r}")
        self.driver.find_element(By.XPATH, f"//*[@id='examples']//button[normalize-space()='{text}']").click()
        self.wait(lambda: self.value("prompt") == text, 10, "the example did not fill the prompt")

    def upload(self, elem_id: str, path: str | Path) -> None:
        """Give the file at ``path`` to the upload field of component ``elem_id``."""
        self.find(f"#{elem_id} input[type=file]").send_keys(str(Path(path).resolve()))

    def download(self, elem_id: str, name: str, path: str | Path) -> Path:
        """Fetch the download link ``name`` of component ``elem_id`` (as the browser would) into ``path``."""
        import urllib.request

        from selenium.webdriver.common.by import By

        links = self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[href]")
        href = next(a.get_attribute("href") for a in links if a.get_attribute("href").endswith("/" + name))
        path = Path(path)
        with urllib.request.urlopen(href, timeout=30) as response:
            path.write_bytes(response.read())
        return path

    def open_sampling(self) -> None:
        self.find("#sampling button").click()
        self.wait(lambda: self.driver.find_elements("css selector", "#seed input"), 10, "sampling settings did not open")

    def tab(self, name: str) -> None:
        """Show the tab labelled ``name``."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.XPATH, f"//button[@role='tab'][normalize-space()='{name}']").click()

    def run(self, button_id: str) -> tuple[str, float]:
        """Click ``button_id``; wait for a new "Made ..." status and for clip 1 to play.

        Returns the status and the click-to-sound time in seconds (browser clock).
        """
        before = self.text("status")
        self.driver.execute_script(CLICK_JS, button_id)
        self.wait(lambda: self.text("status") != before and self.text("status").startswith("Made"),
                  message="no result appeared")
        self.wait(lambda: self.driver.execute_script("return window.__playing !== null"), 30, "clip 1 never played")
        seconds = self.driver.execute_script("return (window.__playing - window.__clicked) / 1000")
        return self.text("status"), float(seconds)

    def expect_message(self, button_id: str, message: str, timeout: float = 30) -> str:
        """Click ``button_id`` and wait for an error message containing ``message``; return the page's text."""
        self.find(f"#{button_id}").click()
        self.wait(lambda: message in self.find("body").text, timeout, f"no message {message!r}")
        return self.find("body").text

    def dismiss_messages(self) -> None:
        """Close the message toasts."""
        for button in self.driver.find_elements("css selector", ".toast-wrap button[aria-label='Close']"):
            button.click()
        self.wait(lambda: not self.driver.find_elements("css selector", ".toast-wrap .toast-item"), 10,
                  "the messages did not close")

    def screenshot(self, path: str | Path, top_css: str | None = None) -> Path:
        """A PNG of the window (scrolled to ``top_css`` first, if given)."""
        if top_css:
            self.driver.execute_script("document.querySelector(arguments[0]).scrollIntoView()", top_css)
            time.sleep(0.3)
        from PIL import Image

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)  # a third of the bytes
        return path
