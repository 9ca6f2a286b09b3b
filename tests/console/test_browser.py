"""The console in a real headless Chromium (Debian's chromium and chromium-driver, via Selenium)
against the real `outreach web` process, with the Procfile's worker, on PostgreSQL and Redis.

Screenshots of each step are kept as the run's artefacts, in `test-artefacts/console-browser/`
(or under `OUTREACH_TEST_ARTEFACTS`), replaced by each run. A missing browser fails the test: a
green run must mean the pages were really seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest

from storage import clock
from storage.db import database
from storage.models import Campaign, Sender
from tests.conftest import T0
from tests.console.conftest import PASSWORD, make_tenant
from tests.console.test_review import bury
from tests.processes import ROOT, wait_until, web_process, worker_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Where the screenshots are kept after the run (a CI job uploads this directory).
ARTEFACTS = Path(os.environ.get("OUTREACH_TEST_ARTEFACTS", ROOT / "test-artefacts"))


@pytest.fixture
def shots() -> Path:
    """This test's screenshot directory, emptied of an earlier run's."""
    folder = ARTEFACTS / "console-browser"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
def browser(tmp_path) -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def web(live_services, tmp_path) -> Iterator[str]:
    """The Procfile's `web:` process on a free port; yields its base URL."""
    env = {**live_services, "OUTREACH_SECRET_KEY": "browser-test-secret-key"}
    with web_process(env, tmp_path / "web.log") as url:
        yield url


def done_count(driver) -> int:
    return int(driver.find_element("id", "done").text)


def shows(driver, element_id: str, text: str) -> bool:
    """Whether the page now loaded shows `text` in that element (the page a form's submit
    leads to may not have replaced the one it was sent from yet)."""
    from selenium.common.exceptions import WebDriverException

    try:
        return driver.find_element("id", element_id).text == text
    except WebDriverException:  # no such element yet, or one of the page being replaced
        return False


def submit_and_wait(driver, button) -> None:
    """Click a form's submit button, then wait until the page it was on has been replaced
    (reading the next page before would read the old one, or an element being torn down)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element("tag name", "html")

    def replaced(_driver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # Chromium's answer when the old page is being torn down as it is asked about.
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    button.click()
    WebDriverWait(driver, 30).until(replaced)


def tick_and_submit(driver, form_id: str) -> None:
    """Confirm and submit the form, then wait for the page it leads to."""
    form = driver.find_element("id", form_id)
    form.find_element("name", "confirm").click()
    submit_and_wait(driver, form.find_element("css selector", "button[type=submit]"))


def test_an_operator_follows_a_campaign_pauses_it_and_requeues_a_dead_letter(
    live_services, web, browser, tmp_path, shots
):
    redis_broker = dramatiq.get_broker()
    with database.connection_context():
        tenant = make_tenant("Acme", contacts=6)
        other = make_tenant("Globex", contacts=1)
        # Each account's WhatsApp sender, paused by a WAHA 463
        for who in (tenant, other):
            Sender.create(
                name=f"whatsapp:{who.account.name.lower()}", channel="whatsapp",
                account_id=who.account.id, paused_until=clock.now() + timedelta(hours=3),
                pause_reason="WAHA 463", created_at=clock.now(),
            )  # fmt: skip
    campaign_id = tenant.campaign.id
    # A delivery of this campaign's account that died, and one of another account's campaign
    dead = bury(redis_broker, "run_campaign_batch", "campaign", campaign_id, 99)
    foreign = bury(redis_broker, "run_campaign_batch", "campaign", other.campaign.id, 99)

    with worker_process(live_services, tmp_path / "worker.log"):
        # Given the operator logged in
        browser.get(f"{web}/console/login")
        browser.find_element("id", "email").send_keys(tenant.email)
        browser.find_element("id", "password").send_keys(PASSWORD)
        submit_and_wait(browser, browser.find_element("id", "login"))
        assert "Overview" in browser.find_element("tag name", "h1").text
        # The overview shows their paused sender and why, not the other account's
        paused = browser.find_element("id", "senders-paused").text
        assert "whatsapp:acme" in paused and "WAHA 463" in paused
        assert "whatsapp:globex" not in paused
        browser.save_screenshot(str(shots / "1-overview.png"))

        # When they open the campaign and run its batch now, the worker sends it: the
        # progress bar moves to 2 of 6
        browser.get(f"{web}/console/campaigns/{campaign_id}")
        assert done_count(browser) == 0
        tick_and_submit(browser, "form-run-now")
        assert "batch 1 enqueued" in browser.find_element("id", "flash").text

        def sent(n: int) -> bool:
            browser.get(f"{web}/console/campaigns/{campaign_id}")
            return done_count(browser) == n

        wait_until(lambda: sent(2), timeout=90, what="the first batch to be sent")
        progress = browser.find_element("id", "progress")
        assert (progress.get_attribute("value"), progress.get_attribute("max")) == ("2", "6")
        browser.save_screenshot(str(shots / "2-first-batch.png"))
        # A day later the next batch moves it to 4 of 6
        clock.get_clock().set(T0 + timedelta(days=1, minutes=1))  # type: ignore[attr-defined]
        tick_and_submit(browser, "form-run-now")
        wait_until(lambda: sent(4), timeout=90, what="the second batch to be sent")
        assert "4 of 6" in browser.find_element("tag name", "main").text
        browser.get(f"{web}/console/campaigns")
        assert "67%" in browser.find_element("id", "campaigns").text
        browser.save_screenshot(str(shots / "3-campaigns.png"))

        # When they pause it (confirming)
        browser.get(f"{web}/console/campaigns/{campaign_id}")
        tick_and_submit(browser, "form-pause")
        # Then the page and the database say paused
        wait_until(lambda: shows(browser, "status", "paused"), timeout=30, what="the paused page")
        with database.connection_context():
            assert Campaign.get_by_id(campaign_id).status == "paused"
        browser.save_screenshot(str(shots / "4-paused.png"))

        # When they requeue their dead letter from the review page
        browser.get(f"{web}/console/review")
        page = browser.page_source
        assert dead.message_id in page
        assert foreign.message_id not in page
        browser.save_screenshot(str(shots / "5-review.png"))
        tick_and_submit(browser, f"requeue-{dead.message_id}")
        assert "1 dead message(s) requeued" in browser.find_element("id", "flash").text
        browser.save_screenshot(str(shots / "6-requeued.png"))

        # Then it left the dead letters, the other account's stayed, and the worker took it
        dead_key = f"{redis_broker.namespace}:campaign.XQ"
        remaining = {m.decode() for m in redis_broker.client.zrange(dead_key, 0, -1)}
        assert remaining == {foreign.message_id}
        worker_log = tmp_path / "worker.log"
        wait_until(
            lambda: '"batch_number": 99' in worker_log.read_text(),
            timeout=60,
            what="the worker to run the requeued message",
        )
    # The web process logged who did each action
    log = (tmp_path / "web.log").read_text()
    for action in ("campaign.run-now", "campaign.pause", "dlq.requeue"):
        assert f'"action": "{action}"' in log
    assert f'"operator_id": {tenant.operator.id}' in log
    assert len(list(shots.glob("*.png"))) == 6
