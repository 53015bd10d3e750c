"""convlens explore: the page it writes, opened in a real browser (Debian's chromium, driven by
selenium): the self-check, no console errors, nothing fetched, hovering values, changing controls,
every number checked against convlens's own."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

import convlens
from convlens.cli import main
from convlens.explore import ExplorePage, explore
from convlens.explore.data import ExploreError
from helpers import fake_cifar10

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def embedded(page: ExplorePage) -> dict:
    text = re.search(r'<script type="application/json" id="convlens-data">(.*?)</script>', page.html, re.S)
    assert text is not None
    return json.loads(text.group(1))


def reference(config: dict, x: list, w: list, b: list | None) -> torch.Tensor:
    """convlens's output for the page's configuration and values (float64), as the page states them."""
    c = config
    H, W, cin, cout, G = c["H"], c["W"], c["cin"], c["cout"], c["groups"]
    x_t = torch.tensor(x, dtype=torch.float64).reshape(1, cin, H, W)
    bias = None if b is None else torch.tensor(b, dtype=torch.float64)
    if c["transposed"]:
        w_t = torch.tensor(w, dtype=torch.float64).reshape(cin, cout // G, c["kh"], c["kw"])
        return convlens.conv_transpose2d(x_t, w_t, bias, (c["sh"], c["sw"]), (c["pt"], c["pl"]), (c["oph"], c["opw"]),
                                         G, (c["dh"], c["dw"]))[0]  # fmt: skip
    w_t = torch.tensor(w, dtype=torch.float64).reshape(cout, cin // G, c["kh"], c["kw"])
    padded = torch.nn.functional.pad(x_t, (c["pl"], c["pr"], c["pt"], c["pb"]),
                                     mode="constant" if c["pmode"] == "zeros" else c["pmode"])  # fmt: skip
    return convlens.conv2d(padded, w_t, bias, (c["sh"], c["sw"]), 0, (c["dh"], c["dw"]), G)[0]


def test_the_page_is_one_self_contained_file_with_convlens_values() -> None:
    page = explore((6, 7), 4, 2, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                   padding_mode="reflect")  # fmt: skip
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page.html)  # nothing loaded from anywhere
    assert "http://" not in page.html and "https://" not in page.html and "@import" not in page.html
    data = embedded(page)
    config = data["config"]
    x = torch.tensor(data["x"], dtype=torch.float64).reshape(1, 4, 6, 7)
    w = torch.tensor(data["w"], dtype=torch.float64).reshape(2, 2, 3, 2)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (2, 2, 1, 1), mode="reflect"), w, torch.tensor(data["b"]).double(), (2, 1), 0,
        (1, 2), 2,
    )  # fmt: skip
    assert torch.equal(torch.tensor(data["out"]).reshape(expected.shape[1:]), expected[0])
    assert (config["paddingText"], config["pmode"], config["groups"]) == ("1,2", "reflect", 2)
    assert "<iframe srcdoc=" in page._repr_html_()


def test_explore_refuses_what_it_cannot_draw(tmp_path: Path, capsys) -> None:
    with pytest.raises(ExploreError, match="inputs up to 48x48"):
        explore((100, 100), 3, 2, (3, 3))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        explore((3, 3), 1, 1, (5, 5))
    layer = ["--model", "resnet18", "--layer", "conv1"]
    for args, message in ((["--dims", "3"], "explore draws --dims 1 and 2"),
                          (["--image", "x.png"], "--image goes with --model"),
                          ([*layer, "--index", "3"], "--index picks a CIFAR-10 image"),
                          ([*layer, "--image", str(tmp_path / "none.png")], "no such file"),
                          (["--size", "60"], "inputs up to 48x48")):  # fmt: skip
        assert main(["explore", *args, "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("CI tests explore in a real browser: scripts/test installs chromium and chromium-driver")
        pytest.skip("no chromium and chromedriver (apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(browser, path: Path) -> None:
    """Open a page and check what every page must: the self-check passed, no console error, and
    nothing requested but the file itself and its inline data."""
    browser.get_log("browser"), browser.get_log("performance")  # empty the logs of earlier pages
    browser.get(path.resolve().as_uri())
    body = browser.find_element("tag name", "body")
    assert body.get_attribute("data-selfcheck") == "pass", browser.find_element("id", "selfcheck").text
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = {e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    assert {url for url in urls if not url.startswith("data:")} == {path.resolve().as_uri()}


def hover(browser, selector: str) -> str:
    from selenium.webdriver.common.action_chains import ActionChains

    node = browser.find_element("css selector", selector)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", node)
    ActionChains(browser).move_to_element(node).perform()
    return browser.find_element("id", "explanation").text


def state(browser) -> dict:
    return json.loads(browser.execute_script("return JSON.stringify(explore.state())"))


CONFIGURATIONS = {
    "cs231n": [],
    "strided-dilated": ["--size", "9,8", "--kernel", "3,2", "--stride", "2,1", "--dilation", "2,3", "--padding", "1,2"],
    "grouped": ["--size", "6", "--channels", "4", "--filters", "6", "--groups", "2", "--padding", "same"],
    "reflect": ["--size", "5,6", "--padding", "2,1", "--padding-mode", "reflect", "--channels", "2"],
    "signal": ["--dims", "1", "--size", "12", "--kernel", "3", "--dilation", "2", "--padding", "same",
               "--padding-mode", "circular"],
    "transposed": ["--transposed", "--size", "3,4", "--channels", "2", "--filters", "2", "--groups", "2", "--stride",
                   "2", "--padding", "1", "--output-padding", "1"],
}  # fmt: skip


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_a_configuration_page_in_a_browser(browser, tmp_path: Path, capsys, name: str) -> None:
    assert main(["explore", *CONFIGURATIONS[name], "--out", str(tmp_path)]) == 0
    path = Path(capsys.readouterr().out.split()[1])
    open_page(browser, path)
    now = state(browser)
    expected = reference(now["config"], now["x"], now["w"], now["b"])
    assert torch.equal(torch.tensor(now["out"]).reshape(expected.shape), expected)  # integers: exact
    cells = browser.find_elements("css selector", "[data-output-cell]")
    assert len(cells) == expected.numel()
    for cell in (cells[0], cells[len(cells) // 2], cells[-1]):
        co, y, x = map(int, cell.get_attribute("data-output-cell").split(","))
        text = hover(browser, f'[data-output-cell="{co},{y},{x}"]')
        where = f"{x}" if now["config"]["rank"] == 1 else f"{y}, {x}"
        assert text.startswith(f"output[{co}, {where}]")
        assert text.splitlines()[-1].endswith(f"= {expected[co, y, x].item():g}")
        assert float(cell.get_attribute("data-value")) == expected[co, y, x].item()
        lit = browser.find_elements("css selector", "[data-input-cell].lit")
        assert 0 < len(lit) <= now["config"]["kh"] * now["config"]["kw"] * now["config"]["cin"]
    browser.save_screenshot(str(tmp_path / f"explore-{name}.png"))
    assert (tmp_path / f"explore-{name}.png").stat().st_size > 10_000


def test_hovering_an_input_value_shows_every_output_it_feeds(browser, tmp_path: Path) -> None:
    """The outputs lit are exactly those whose value depends on that input (its padding copies
    included): the non-zeros of convlens's convolution of a one-hot input with positive weights."""
    page = explore((5, 6), 2, 2, (3, 3), stride=(1, 2), padding=(2, 1), dilation=(2, 1), padding_mode="reflect")
    open_page(browser, page.save(tmp_path / "feeds.html"))
    c = state(browser)["config"]
    for channel, i, j in ((0, 0, 0), (1, 2, 3), (0, 4, 5)):
        text = hover(browser, f'[data-input-cell="{channel},{i + c["pt"]},{j + c["pl"]}"]')
        lit = {tuple(map(int, node.get_attribute("data-output-cell").split(",")))
               for node in browser.find_elements("css selector", "[data-output-cell].feeds")}  # fmt: skip
        one_hot = torch.zeros(1, 2, 5, 6, dtype=torch.float64)
        one_hot[0, channel, i, j] = 1.0
        out = convlens.conv2d(one_hot, torch.ones(2, 2, 3, 3, dtype=torch.float64), None, (1, 2), (2, 1), (2, 1),
                              padding_mode="reflect")[0]  # fmt: skip
        assert lit == {tuple(index) for index in out.nonzero().tolist()}
        assert f"feeds {len(lit)} output value" in text


def test_changing_the_controls_recomputes_as_convlens_does(browser, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(browser, explore((7, 7), 2, 2, (3, 3)).save(tmp_path / "controls.html"))

    def set_value(key: str, value: str) -> None:
        control = browser.find_element("id", f"ctl-{key}")
        control.clear()
        control.send_keys(value)
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", control)

    for key, value in (("kh", "2"), ("dw", "2"), ("paddingText", "same"), ("groups", "2")):
        set_value(key, value)
    Select(browser.find_element("id", "ctl-pmode")).select_by_value("replicate")
    browser.execute_script("document.getElementById('ctl-pmode').dispatchEvent(new Event('change'))")
    now = state(browser)
    config = now["config"]
    assert (config["kh"], config["dw"], config["groups"], config["pmode"]) == (2, 2, 2, "replicate")
    assert (now["config"]["pt"], now["config"]["pb"]) == (0, 1)  # "same" with an even kernel: the extra row after
    expected = reference(now["config"], now["x"], now["w"], now["b"])
    assert torch.equal(torch.tensor(now["out"]).reshape(expected.shape), expected)
    assert "padding='same'" in browser.find_element("id", "code").text
    set_value("sh", "2")  # 'same' with a stride: refused with convlens's words, the page keeps its last state
    assert "padding='same' requires stride=1, got stride=(2, 1)" in browser.find_element("id", "error").text
    browser.execute_script("document.getElementById('ctl-transposed').click()")
    Select(browser.find_element("id", "ctl-pmode")).select_by_value("zeros")
    set_value("paddingText", "1")
    set_value("oph", "1")
    now = state(browser)
    assert now["config"]["transposed"] and now["config"]["oph"] == 1
    expected = reference(now["config"], now["x"], now["w"], now["b"])
    assert torch.equal(torch.tensor(now["out"]).reshape(expected.shape), expected)
    formula = browser.find_element("id", "formula").text
    assert f"+ 1 + 1 = {expected.shape[1]}" in formula.splitlines()[0]
    browser.save_screenshot(str(tmp_path / "controls.png"))


def test_a_wrong_value_fails_the_self_check(browser, tmp_path: Path) -> None:
    """The self-check is a real check: one embedded value off by 1e-6 and the page says so."""
    page = explore((4, 4), 1, 1, (3, 3))
    data = embedded(page)
    tampered = json.dumps({**data, "out": [data["out"][0] + 1e-6, *data["out"][1:]]}, separators=(",", ":"))
    html = re.sub(r'(id="convlens-data">).*?(</script>)', lambda m: m.group(1) + tampered + m.group(2), page.html,
                  flags=re.S)  # fmt: skip
    path = ExplorePage(page.title, html).save(tmp_path / "tampered.html")
    browser.get(path.resolve().as_uri())
    body = browser.find_element("tag name", "body")
    assert body.get_attribute("data-selfcheck") == "fail"
    assert float(body.get_attribute("data-selfcheck-difference")) == pytest.approx(1e-6)
    assert "FAILED at 1 values" in browser.find_element("id", "selfcheck").text


def test_the_library_gives_a_model_page() -> None:
    data = embedded(explore(model="resnet18", layer="layer4.1.conv2"))
    assert data["mode"] == "model" and data["model"]["config"]["cin"] == 512
    assert data["model"]["field"]["size"] == [435, 435]
    with pytest.raises(TypeError, match="model= and layer= together"):
        explore(model="resnet18")


def test_a_model_layer_page_in_a_browser(browser, tmp_path: Path, capsys, monkeypatch) -> None:
    import torchvision.datasets.cifar as cifar

    fake_cifar10(tmp_path / "data")
    # torchvision checks the real files' md5 sums; a data set made here cannot match them.
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    assert main(["explore", "--model", "resnet18", "--layer", "layer1.0.conv1", "--data-root", str(tmp_path / "data"),
                 "--index", "3", "--out", str(tmp_path)]) == 0  # fmt: skip
    path = Path(capsys.readouterr().out.split()[1])
    open_page(browser, path)
    assert "CIFAR-10 test image 3" in browser.find_element("tag name", "pre").text
    for at in ((0, 5, 7), (0, 55, 0)):  # output channel 0 is the one drawn
        text = hover(browser, '[data-output-cell="{},{},{}"]'.format(*at))
        assert text.startswith("output[0, {}, {}, {}] by hand: 576 products".format(*at))
        assert float(re.search(r"\|difference\| (\S+)", text).group(1)) < 1e-5
        assert f"receptive field 19x19 (jump 4): rows {-9 + 4 * at[1]}..{-9 + 4 * at[1] + 18}" in text
    browser.save_screenshot(str(tmp_path / "explore-model.png"))
