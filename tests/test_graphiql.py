"""GraphiQL in a real browser: served by the app with no internet, it runs a query against /graphql
and a subscription over its websocket. One test reads its page without a browser.

Drives Debian's chromium through chromium-driver (selenium). Without them the test skips, except
in CI (CI=true), where it fails; .ci/run installs them.
"""

import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from gql_blog import migrations
from gql_blog.app import create_app
from gql_blog.config import Settings

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
]
WAIT_SECONDS = 10

# The value of CodeMirror 5's editor under a GraphiQL section (query editor, response pane).
_EDITOR_VALUE = (
    "return document.querySelector(arguments[0] + ' .CodeMirror')?.CodeMirror.getValue()"
)


def _browser_paths() -> tuple[str, str]:
    """chromium and chromedriver, or skip (fail in CI) naming what is missing."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and chromedriver:
        return chromium, chromedriver
    missing = " and ".join(
        name for name, path in [("chromium", chromium), ("chromedriver", chromedriver)] if not path
    )
    reason = f"{missing} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, chromedriver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """The real app under uvicorn, in a thread, on a free loopback port, over a migrated SQLite."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'blog.sqlite'}"
    migrations.upgrade(database_url)
    app = create_app(Settings(database_url=database_url))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(WAIT_SECONDS)


def test_graphiql_runs_a_query_with_local_assets_only(
    server_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    query = "{ viewer { id } }"
    browser.get(f"{server_url}/graphql")  # GET ?query= would run the query, not open GraphiQL
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda d: d.execute_script(_EDITOR_VALUE, ".graphiql-query-editor") is not None)
    browser.find_element(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror").click()
    select_all = ActionChains(browser).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
    select_all.send_keys(query).perform()  # typed; the editor's closing brackets are typed over
    assert browser.execute_script(_EDITOR_VALUE, ".graphiql-query-editor") == query
    assert browser.find_elements(By.XPATH, "//button[normalize-space()='Headers']")

    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
    result = wait.until(lambda d: d.execute_script(_EDITOR_VALUE, ".graphiql-response") or None)
    browser.save_screenshot(str(tmp_path / "graphiql.png"))
    assert '"viewer": null' in result, result

    resources: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert any(url.endswith("/graphiql.min.js") for url in resources), resources
    assert all(url.startswith(f"{server_url}/") for url in resources), resources
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


# Every editor's value in GraphiQL's tools pane (variables, headers), shown or hidden.
_TOOL_EDITOR_VALUES = (
    "return Array.from(document.querySelectorAll('.graphiql-editor-tool .CodeMirror'))"
    ".map((editor) => editor.CodeMirror.getValue())"
)
README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example_query() -> str:
    """The query the README's quick start asks to try in GraphiQL."""
    after = README.read_text().split("Then try this query in GraphiQL", 1)[1]
    return after.split("```graphql\n", 1)[1].split("```", 1)[0].strip()


def test_graphiql_opens_on_the_readme_query_and_an_authorization_template(
    server_url: str, browser: WebDriver
) -> None:
    browser.get(f"{server_url}/graphql")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    query = wait.until(lambda d: d.execute_script(_EDITOR_VALUE, ".graphiql-query-editor"))
    assert _readme_example_query() in query
    assert "Welcome to GraphiQL" not in query
    assert '{\n  "Authorization": "Bearer <token from the login mutation>"\n}' in (
        browser.execute_script(_TOOL_EDITOR_VALUES)
    )

    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()
    result = wait.until(lambda d: d.execute_script(_EDITOR_VALUE, ".graphiql-response") or None)
    # It runs, and the untouched template sent no token (a bad one would bring a warning).
    body = json.loads(result)
    assert body["data"] == {"posts": {"totalCount": 0, "nodes": []}}
    assert "errors" not in body
    assert "warnings" not in body["extensions"]


def _open_subscriptions(server_url: str) -> float:
    text = httpx.get(f"{server_url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gql_blog_open_subscriptions":
                return sample.value
    return 0.0


def _run_in_graphiql(browser: WebDriver, server_url: str, document: str) -> None:
    browser.get(f"{server_url}/graphql")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda d: d.execute_script(_EDITOR_VALUE, ".graphiql-query-editor") is not None)
    set_value = (
        "document.querySelector(arguments[0] + ' .CodeMirror').CodeMirror.setValue(arguments[1])"
    )
    browser.execute_script(set_value, ".graphiql-query-editor", document)
    # GraphiQL takes an edit in after a debounce: until then it runs the document it parsed last
    # (a subscription clicked at once went out over HTTP as the README's query would). It stores
    # the query in that same step.
    stored = "return window.localStorage.getItem('graphiql:query')"
    wait.until(lambda d: d.execute_script(stored) == document)
    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()


def test_graphiql_subscribes_over_the_websocket(server_url: str, browser: WebDriver) -> None:
    register = """mutation {
      register(input: {username: "writer", email: "writer@example.test", password: "long enough"}) {
        ... on AuthPayload { token }
      }
    }"""
    token = httpx.post(f"{server_url}/graphql", json={"query": register}).json()["data"]
    token = token["register"]["token"]
    before = _open_subscriptions(server_url)
    _run_in_graphiql(browser, server_url, "subscription { postPublished { title } }")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda d: _open_subscriptions(server_url) > before)  # GraphiQL is listening

    create = """mutation {
      createPost(input: {title: "Live", content: "Body.", published: true}) { __typename }
    }"""
    httpx.post(
        f"{server_url}/graphql",
        json={"query": create},
        headers={"Authorization": f"Bearer {token}"},
    )

    result = wait.until(lambda d: d.execute_script(_EDITOR_VALUE, ".graphiql-response") or None)
    assert '"title": "Live"' in result, result
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_graphiql_page_names_only_its_own_assets_and_opens_on_the_readme_query(
    server_url: str,
) -> None:
    # Without a browser: what the page loads, and what it tells GraphiQL to open on.
    page = httpx.get(f"{server_url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assets = sorted(re.findall(r'(?:src|href)="([^"]*)"', page.text))
    assert assets == [
        "/graphql/static/graphiql.min.css",
        "/graphql/static/graphiql.min.js",
        "/graphql/static/react-dom.production.min.js",
        "/graphql/static/react.production.min.js",
        "data:,",
    ]
    for asset in assets:
        if asset.startswith("/"):
            assert httpx.get(f"{server_url}{asset}").status_code == 200, asset
    assert json.dumps(_readme_example_query()).removeprefix('"').removesuffix('"') in page.text
    template = {"Authorization": "Bearer <token from the login mutation>"}
    assert json.dumps(json.dumps(template, indent=2)) in page.text
