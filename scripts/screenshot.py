"""Screenshot an HTML page in headless chromium (for the README's picture of convlens explore):
python scripts/screenshot.py PAGE.html OUT.png [HOVER_SELECTOR]."""

from __future__ import annotations

import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains

page, out = Path(sys.argv[1]), Path(sys.argv[2])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--window-size=1300,1150"):  # fmt: skip
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(page.resolve().as_uri())
    if len(sys.argv) > 3:
        ActionChains(driver).move_to_element(driver.find_element("css selector", sys.argv[3])).perform()
    driver.save_screenshot(str(out))
finally:
    driver.quit()
print(f"wrote {out}")
