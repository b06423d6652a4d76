#!/usr/bin/python3
"""Drives jailwarden's Cockpit page in headless Chromium (Selenium), for
tests/cockpit.rs, which sets up the bus, the daemon (nftables in the
namespace JW_DAEMON_NETNS) and, when asked, a cockpit-ws local session per
browser (as root, or as the user nobody).

Asks the test to stop, start or reconfigure the daemon by printing
"ASK <what>" and reading "ok"; prints "RESULT <json>" at the end. Any
failed check raises, and the exit status says so.
"""

import json
import os
import subprocess
import sys
import time

from PIL import Image, ImageStat
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BIN = os.environ["JW_BIN"]
SOCKET = os.environ["JW_SOCKET"]
NETNS = os.environ["JW_DAEMON_NETNS"]
PAGE = "/cockpit/@localhost/jailwarden/index.html"
ARTIFACTS = os.environ["JW_ARTIFACTS"]
SEEDED_MONTH = int(os.environ["JW_SEEDED_MONTH"])
SEEDED_DAY = int(os.environ["JW_SEEDED_DAY"])

result = {"screenshots": {}}
test_bans = []  # (jail, address) banned by this run, in order


def log(*args):
    print(*args, flush=True)


def ask(what):
    log("ASK " + what)
    answer = sys.stdin.readline().strip()
    if answer.split(" ")[0] != "ok":
        raise RuntimeError(f"the test answered {answer!r} to {what}")
    return answer[3:]


def cockpit(user):
    """A fresh cockpit-ws for one browser session, as root or nobody."""
    return "http://127.0.0.1:" + ask("ws-" + user)


def cli(*args, check=True):
    env = dict(os.environ, JAILWARDEN_SOCKET=SOCKET, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent")
    out = subprocess.run([BIN, *args], capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise RuntimeError(f"jailwarden {' '.join(args)}: {out.returncode} {out.stderr}")
    return out


def kernel_set(jail, family="v4"):
    """The addresses in the daemon's nftables set (in its namespace)."""
    out = subprocess.run(["ip", "netns", "exec", NETNS, "nft", "-j", "list", "set", "inet", "jailwarden",
                          f"{jail}-{family}"], capture_output=True, text=True, check=True)
    addrs = set()
    for item in json.loads(out.stdout)["nftables"]:
        for e in item.get("set", {}).get("elem", []):
            v = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
            if isinstance(v, dict) and "prefix" in v:
                v = f'{v["prefix"]["addr"]}/{v["prefix"]["len"]}'
            addrs.add(v)
    return addrs


def wait(what, fn, timeout=10.0, every=0.05):
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except StaleElementReferenceException:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"timed out ({timeout} s) waiting for {what}; last: {last!r}")
        time.sleep(every)


def browser():
    o = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1200",
              "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--disable-quic",
              "--user-data-dir=" + os.environ["JW_PROFILE"] + "-" + str(len(result["screenshots"]))]:
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def console_errors(d):
    errors = []
    for entry in d.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        # The browser asks for /favicon.ico by itself; Cockpit has none
        # outside its shell. Not the page's doing.
        if "favicon.ico" in entry["message"]:
            continue
        errors.append(entry["message"])
    return errors


def shot(d, name):
    path = os.path.join(ARTIFACTS, f"{len(result['screenshots']) + 1:02d}-{name}.png")
    # The whole page, not just the window.
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1400, max(900, min(height + 140, 4000)))
    time.sleep(0.3)
    d.save_screenshot(path)
    with Image.open(path) as img:
        stddev = ImageStat.Stat(img.convert("L")).stddev[0]
        colours = len(img.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    result["screenshots"][name] = {"path": path, "stddev": stddev, "colours": colours}
    log(f"screenshot {name}: {path} (stddev {stddev:.1f}, {colours} colours)")
    if stddev < 8 or colours < 16:
        raise AssertionError(f"screenshot {name} looks blank")


def click(d, css):
    """Click what css finds, again if the page re-rendered it meanwhile."""
    def once():
        d.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait(f"a click on {css}", once, timeout=5)


def text(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def shown(d, css):
    return [e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def ban_row(d, address):
    rows = d.find_elements(By.CSS_SELECTOR, f'#bans tbody tr[data-address="{address}"]')
    return rows[0] if rows else None


def click_in_row(d, address, css):
    """Click CSS in the ban row of ADDRESS. The table re-renders on every
    change the daemon signals, so a row found may be replaced before the
    click reaches it: find it again then (a stale element was not clicked)."""
    def attempt():
        row = ban_row(d, address)
        if row is None:
            return False
        row.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait(f"{css} clicked in the row of {address}", attempt)


def compare_with_status(d):
    """The jails table and the header equal `jailwarden status --json`."""
    def same():
        st = json.loads(cli("status", "--json").stdout)
        problems = []
        header = {"#sum-version": st["version"], "#sum-active": str(st["active_bans"]),
                  "#sum-total": str(st["total_bans"])}
        for css, want in header.items():
            got = text(d, css)
            if got != want:
                problems.append(f"{css}: page {got!r}, status {want!r}")
        rows = d.find_elements(By.CSS_SELECTOR, "#jails tbody tr")
        names = [r.get_attribute("data-jail") for r in rows]
        if names != [j["name"] for j in st["jails"]]:
            problems.append(f"jails: page {names}, status {[j['name'] for j in st['jails']]}")
        for j in st["jails"]:
            cells = d.find_elements(By.CSS_SELECTOR, f'#jails tr[data-jail="{j["name"]}"] [data-field]')
            got = {c.get_attribute("data-field"): c.text for c in cells}
            want = {"name": j["name"], "filter": j["filter"],
                    "enabled": "enabled" if j["enabled"] else "disabled",
                    "currently_failed": str(j["currently_failed"]), "total_failed": str(j["total_failed"]),
                    "currently_banned": str(j["currently_banned"]), "total_banned": str(j["total_banned"])}
            for k, v in want.items():
                if got.get(k) != v:
                    problems.append(f"{j['name']}.{k}: page {got.get(k)!r}, status {v!r}")
        return problems
    problems = []

    def settled():
        nonlocal problems
        problems = same()
        return not problems
    try:
        wait("the page to equal jailwarden status --json", settled, timeout=5)
    except AssertionError:
        raise AssertionError("page differs from status --json: " + "; ".join(problems))


def chart_total(d, since_usec=None):
    total = 0
    for r in d.find_elements(By.CSS_SELECTOR, "#chart rect.jw-bar"):
        if since_usec is None or int(r.get_attribute("data-start")) >= since_usec:
            total += int(r.get_attribute("data-count"))
    return total


def root_session():
    d = browser()
    try:
        d.get(cockpit("root") + PAGE)
        wait("the daemon shown running", lambda: text(d, "#daemon-state") == "Running", timeout=20)
        wait("the jails table", lambda: len(d.find_elements(By.CSS_SELECTOR, "#jails tbody tr")) == 3)
        wait("the chart", lambda: d.find_elements(By.CSS_SELECTOR, "#chart rect.jw-bar"))
        assert not shown(d, "#access"), "root has administrative access: no read-only notice"
        assert shown(d, "#ban-form") and shown(d, "#reload"), "root sees the controls"
        assert text(d, "#sum-backend") == "nftables"
        assert text(d, "#sum-purge") == "5w", text(d, "#sum-purge")
        compare_with_status(d)
        # The seeded history: per hour over 24 hours.
        wait("the seeded bans of the last day in the chart", lambda: chart_total(d) == SEEDED_DAY)

        # A ban made with the CLI shows within a second, no reload.
        start_usec = int(time.time() * 1e6)
        hour_start = start_usec - start_usec % int(3600e6)
        cli("ban", "sshd", "198.51.100.50", "--for", "1h")
        t0 = time.monotonic()
        wait("the CLI's ban on the page", lambda: ban_row(d, "198.51.100.50"), timeout=1.0, every=0.01)
        result["ban_seen_after_s"] = time.monotonic() - t0
        log(f"CLI ban shown after {result['ban_seen_after_s'] * 1000:.0f} ms")
        test_bans.append(("sshd", "198.51.100.50"))
        row = ban_row(d, "198.51.100.50")
        assert row.find_element(By.CSS_SELECTOR, '[data-field="jail"]').text == "sshd"
        assert row.find_element(By.CSS_SELECTOR, '[data-field="failures"]').text == "by hand"
        # The origin column: this host's own ban (a fleet host's name for remote bans).
        assert row.find_element(By.CSS_SELECTOR, '[data-field="origin"]').text == "local"
        assert row.get_attribute("data-origin") == ""
        left = row.find_element(By.CSS_SELECTOR, '[data-field="left"]').text
        assert left.startswith("59m") or left == "1h", left
        for jail, addr in [("sshd", "198.51.100.51"), ("nginx-http-auth", "198.51.100.52"),
                           ("nginx-http-auth", "2001:db8::52")]:
            cli("ban", jail, addr, "--for", "2h")
            test_bans.append((jail, addr))
        wait("four bans on the page", lambda: len(d.find_elements(By.CSS_SELECTOR, "#bans tbody tr")) == 4)
        # Failures reported: a ban with its count.
        for _ in range(3):
            cli("report", "sshd", "198.51.100.53")
        test_bans.append(("sshd", "198.51.100.53"))
        wait("the reported ban", lambda: ban_row(d, "198.51.100.53"))
        wait("its failures", lambda: ban_row(d, "198.51.100.53")
             .find_element(By.CSS_SELECTOR, '[data-field="failures"]').text == "3")
        compare_with_status(d)
        assert "198.51.100.50" in kernel_set("sshd"), "the CLI's ban is in the kernel"

        # The ban form: a ban, then errors shown inline.
        d.find_element(By.CSS_SELECTOR, '#ban-jail option[value="nginx-http-auth"]').click()
        d.find_element(By.ID, "ban-address").send_keys("198.51.100.60")
        d.find_element(By.CSS_SELECTOR, '#ban-duration option[value="permanent"]').click()
        d.find_element(By.ID, "ban-submit").click()
        wait("the form's ban", lambda: ban_row(d, "198.51.100.60"))
        test_bans.append(("nginx-http-auth", "198.51.100.60"))
        assert ban_row(d, "198.51.100.60").find_element(By.CSS_SELECTOR, '[data-field="left"]').text == "permanent"
        assert "198.51.100.60" in wait("the form's ban in the kernel",
                                       lambda: kernel_set("nginx-http-auth") if "198.51.100.60" in kernel_set("nginx-http-auth") else None)
        shot(d, "overview")
        for addr, error in [("127.0.0.5", "org.jailwarden1.Error.IgnoredAddress"),
                            ("198.51.100.0/24", "org.jailwarden1.Error.InvalidAddress")]:
            box = d.find_element(By.ID, "ban-address")
            box.clear()
            box.send_keys(addr)
            d.find_element(By.ID, "ban-submit").click()
            wait(f"the inline error for {addr}",
                 lambda: shown(d, "#ban-error") and d.find_element(By.ID, "ban-error").get_attribute("data-error") == error)
        assert "only such a range can be banned" in text(d, "#ban-error"), text(d, "#ban-error")
        box = d.find_element(By.ID, "ban-address")
        box.clear()
        box.send_keys("127.0.0.5")
        d.find_element(By.ID, "ban-submit").click()
        wait("the ignoreip explanation", lambda: "ignoreip" in text(d, "#ban-error"))
        shot(d, "ban-error")

        # Search and sort.
        search = d.find_element(By.ID, "bans-search")
        search.send_keys("198.51.100.5")
        wait("the search", lambda: sorted(r.get_attribute("data-address") for r in
                                          d.find_elements(By.CSS_SELECTOR, "#bans tbody tr"))
             == ["198.51.100.50", "198.51.100.51", "198.51.100.52", "198.51.100.53"])
        search.clear()
        search.send_keys("nginx")
        wait("the search by jail", lambda: {r.get_attribute("data-jail") for r in
                                            d.find_elements(By.CSS_SELECTOR, "#bans tbody tr")} == {"nginx-http-auth"})
        search.clear()
        search.send_keys(" ")
        search.clear()
        click(d, '#bans th[data-column="address"] button')
        order = wait("sorted by address", lambda: (lambda a: a if len(a) == 6 else None)(
            [r.get_attribute("data-address") for r in d.find_elements(By.CSS_SELECTOR, "#bans tbody tr")]))
        assert order == ["198.51.100.50", "198.51.100.51", "198.51.100.52", "198.51.100.53",
                         "198.51.100.60", "2001:db8::52"], order
        click(d, '#bans th[data-column="left"] button')
        order = wait("sorted by time left", lambda: (lambda a: a if a[0] == "198.51.100.53" else None)(
            [r.get_attribute("data-address") for r in d.find_elements(By.CSS_SELECTOR, "#bans tbody tr")]))
        assert order[-1] == "198.51.100.60", f"by time left: {order}"

        # Unban from the page: the kernel's element goes.
        click_in_row(d, "198.51.100.50", "button.jw-unban")
        t0 = time.monotonic()
        wait("198.51.100.50 out of the kernel set", lambda: "198.51.100.50" not in kernel_set("sshd"), timeout=5)
        result["unban_kernel_s"] = time.monotonic() - t0
        wait("the row gone", lambda: ban_row(d, "198.51.100.50") is None)
        # Unban selected: two at once.
        for addr in ["198.51.100.51", "198.51.100.52"]:
            click_in_row(d, addr, 'input[type="checkbox"]')
        button = d.find_element(By.ID, "unban-selected")
        assert button.text == "Unban selected (2)", button.text
        button.click()
        wait("both gone from the kernel", lambda: "198.51.100.51" not in kernel_set("sshd")
             and "198.51.100.52" not in kernel_set("nginx-http-auth"), timeout=5)
        wait("both gone from the page", lambda: ban_row(d, "198.51.100.51") is None and ban_row(d, "198.51.100.52") is None)

        # The live feed has it all, newest first.
        feed = [(e.get_attribute("data-kind"), e.get_attribute("data-address"))
                for e in d.find_elements(By.CSS_SELECTOR, "#feed li")]
        feed.reverse()
        banned = [a for k, a in feed if k == "banned"]
        unbanned = [a for k, a in feed if k == "unbanned"]
        assert banned == [a for _, a in test_bans], f"feed bans {banned}"
        assert unbanned[0] == "198.51.100.50" and sorted(unbanned[1:]) == ["198.51.100.51", "198.51.100.52"], unbanned

        # The chart counts the test's bans in the current hour (or the
        # next, had the clock passed one) on top of the seeded ones.
        wait("the test's bans in the chart",
             lambda: chart_total(d, hour_start) == len(test_bans) and chart_total(d) == SEEDED_DAY + len(test_bans))
        assert int(d.find_element(By.ID, "chart").get_attribute("data-total")) == SEEDED_DAY + len(test_bans)
        d.find_element(By.CSS_SELECTOR, '.jw-seg[data-range="30d"]').click()
        wait("the 30-day chart", lambda: chart_total(d) == SEEDED_MONTH + len(test_bans))
        days = {r.get_attribute("data-bucket") for r in d.find_elements(By.CSS_SELECTOR, "#chart rect.jw-bar")}
        assert len(days) >= 10, f"bans on {len(days)} days"
        jails = {e.get_attribute("data-jail") for e in d.find_elements(By.CSS_SELECTOR, "#chart-legend li")}
        assert jails == {"sshd", "nginx-http-auth"}, jails
        assert not shown(d, "#chart-note"), "35 days of history cover the 30-day chart"
        shot(d, "chart-30d")

        # Per address: its history, and "Show in logs".
        cli("ban", "sshd", "198.51.100.50", "--for", "30m")
        test_bans.append(("sshd", "198.51.100.50"))
        wait("the second ban", lambda: ban_row(d, "198.51.100.50"))
        click_in_row(d, "198.51.100.50", "button.jw-address")
        wait("the history dialog", lambda: shown(d, "#history-panel"))
        rows = wait("two bans in its history", lambda: (lambda r: r if len(r) == 2 else None)(
            d.find_elements(By.CSS_SELECTOR, "#history tbody tr")))
        assert rows[0].get_attribute("data-ended") == "0", "the newest is in force"
        assert rows[1].get_attribute("data-reason") == "manual", "the first was lifted on the page"
        assert rows[1].get_attribute("data-jail") == "sshd"
        d.execute_script("""
            window.jwJumps = [];
            cockpit.transport.filter(function (data, channel, control) {
                if (control && control.command === "jump") {
                    window.jwJumps.push(control.location);
                    return false;
                }
                return true;
            }, true);""")
        d.find_element(By.ID, "history-logs").click()
        jumps = wait("the jump to the logs", lambda: d.execute_script("return window.jwJumps"))
        assert jumps[0].startswith("/system/logs#/?priority=info&JAILWARDEN_ADDRESS=198.51.100.50&since="), jumps
        shot(d, "history")
        d.find_element(By.ID, "history-close").click()

        # A jail added to the configuration appears after Reload.
        ask("add-jail")
        d.find_element(By.ID, "reload").click()
        wait("the reloaded jail", lambda: d.find_elements(By.CSS_SELECTOR, '#jails tr[data-jail="postfix"]'))
        wait("the reload in the feed", lambda: d.find_elements(By.CSS_SELECTOR, '#feed li[data-kind="reloaded"]'))
        compare_with_status(d)
        shot(d, "reloaded")
        # A broken configuration: Reload is refused, the problem is shown
        # (file:line:column) and the running configuration stays.
        ask("break-config")
        d.find_element(By.ID, "reload").click()
        wait("the refused reload", lambda: shown(d, "#page-error")
             and d.find_element(By.ID, "page-error").get_attribute("data-error") == "org.jailwarden1.Error.Config")
        problem = text(d, "#page-error")
        assert "running one stays" in problem and "jailwarden.toml:" in problem, problem
        assert d.find_elements(By.CSS_SELECTOR, '#jails tr[data-jail="postfix"]'), "the running jails stay"
        ask("add-jail")
        d.find_element(By.ID, "reload").click()
        wait("the error gone after a good reload", lambda: not shown(d, "#page-error"))

        # The daemon stops: the page says so (and the unit's state it can
        # find); it comes back: the page follows, without a reload.
        ask("stop-daemon")
        wait("the page to say it stopped", lambda: text(d, "#daemon-state") == "Not running", timeout=10)
        assert shown(d, "#not-running") and not shown(d, "#running") and not shown(d, "#reload")
        assert not shown(d, "#page-error"), "a stopped daemon is not an error: " + text(d, "#page-error")
        wait("the stop in the feed", lambda: d.find_elements(By.CSS_SELECTOR, '#feed li[data-kind="daemon"]'))
        assert "jailwarden is not running" in text(d, "#not-running")
        wait("the unit's state", lambda: d.find_element(By.ID, "unit-status").get_attribute("data-active"))
        shot(d, "stopped")
        ask("start-daemon")
        wait("the page to see it again", lambda: text(d, "#daemon-state") == "Running", timeout=20)
        wait("the bans again", lambda: ban_row(d, "198.51.100.50") and ban_row(d, "198.51.100.60"))
        compare_with_status(d)

        errors = console_errors(d)
        assert not errors, f"console errors: {errors}"
    except Exception:
        try:
            d.save_screenshot(os.path.join(ARTIFACTS, "failed-root.png"))
            log("page text at failure:\n" + d.find_element(By.TAG_NAME, "body").text)
            log("console: " + json.dumps(d.get_log("browser")))
        finally:
            raise
    finally:
        d.quit()


def user_session():
    """As the user nobody: reading works, changing is neither offered nor allowed."""
    d = browser()
    try:
        d.get(cockpit("nobody") + PAGE)
        wait("the daemon shown running", lambda: text(d, "#daemon-state") == "Running", timeout=20)
        wait("the jails", lambda: len(d.find_elements(By.CSS_SELECTOR, "#jails tbody tr")) == 4)
        wait("the bans", lambda: ban_row(d, "198.51.100.60"))
        notice = wait("the read-only notice", lambda: shown(d, "#access"))
        assert "Read-only" in notice[0].text and "administrative access" in notice[0].text, notice[0].text
        for css in ["#reload", "#ban-form", "#unban-selected", "button.jw-unban", '#bans input[type="checkbox"]']:
            assert not shown(d, css), f"{css} is shown without administrative access"
        # Asked directly over D-Bus, the daemon refuses too.
        answer = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const c = cockpit.dbus("org.jailwarden1", { bus: "system", superuser: "try" });
            c.call("/org/jailwarden1", "org.jailwarden1.Manager", "Ban", ["sshd", "198.51.100.99", 0])
                .then(() => done("banned"), e => done(e.name || String(e)));""")
        assert answer == "org.freedesktop.DBus.Error.AccessDenied", answer
        assert "198.51.100.99" not in kernel_set("sshd")
        shot(d, "read-only")
        # Cockpit's dark style.
        d.execute_script('window.localStorage.setItem("shell:style", "dark")')
        d.refresh()
        wait("the page again", lambda: text(d, "#daemon-state") == "Running", timeout=20)
        wait("dark", lambda: d.execute_script('return document.documentElement.classList.contains("jw-dark")'))
        wait("the bans", lambda: ban_row(d, "198.51.100.60"))
        shot(d, "read-only-dark")
        errors = console_errors(d)
        assert not errors, f"console errors: {errors}"
    except Exception:
        try:
            d.save_screenshot(os.path.join(ARTIFACTS, "failed-user.png"))
            log("page text at failure:\n" + d.find_element(By.TAG_NAME, "body").text)
            log("console: " + json.dumps(d.get_log("browser")))
        finally:
            raise
    finally:
        d.quit()


def shell_session():
    """In Cockpit's shell: the menu entry, and "Show in logs" landing on the
    journal page filtered by the address."""
    d = browser()
    try:
        d.get(cockpit("root") + "/jailwarden")
        link = wait("the menu entry", lambda: [a for a in d.find_elements(By.CSS_SELECTOR, "nav a")
                                              if a.text.strip() == "Intrusion prevention"], timeout=30)
        assert link[0].get_attribute("href").endswith("/jailwarden"), link[0].get_attribute("href")
        frame = wait("the page's frame", lambda: d.find_elements(By.CSS_SELECTOR, 'iframe[name$="/jailwarden"]'))
        d.switch_to.frame(frame[0])
        wait("the daemon shown running", lambda: text(d, "#daemon-state") == "Running", timeout=20)
        wait("a ban", lambda: ban_row(d, "198.51.100.60"))
        d.switch_to.default_content()
        shot(d, "shell-page")
        d.switch_to.frame(frame[0])
        click_in_row(d, "198.51.100.60", "button.jw-address")
        wait("its history", lambda: d.find_elements(By.CSS_SELECTOR, "#history tbody tr"))
        wait("the logs link", lambda: d.find_element(By.ID, "history-logs").get_attribute("data-location"))
        d.find_element(By.ID, "history-logs").click()
        d.switch_to.default_content()
        wait("the shell on the logs page", lambda: "/system/logs" in d.current_url, timeout=20)
        url = d.current_url
        assert "JAILWARDEN_ADDRESS=198.51.100.60" in url and "priority=info" in url, url
        frame = wait("the logs frame", lambda: [f for f in d.find_elements(By.CSS_SELECTOR, "iframe")
                                                 if f.get_attribute("name").endswith("/system/logs") and f.is_displayed()])
        d.switch_to.frame(frame[0])
        search = wait("the logs page's filter", lambda: d.find_elements(By.CSS_SELECTOR, "#journal-grep input"), timeout=20)
        assert "JAILWARDEN_ADDRESS=198.51.100.60" in search[0].get_attribute("value"), search[0].get_attribute("value")
        d.switch_to.default_content()
        shot(d, "shell-logs")
        jw = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE" and "jailwarden" in e["message"]]
        assert not jw, f"console errors from the page: {jw}"
    except Exception:
        try:
            d.switch_to.default_content()
            d.save_screenshot(os.path.join(ARTIFACTS, "failed-shell.png"))
            log("page text at failure:\n" + d.find_element(By.TAG_NAME, "body").text)
            log("console: " + json.dumps(d.get_log("browser")))
        finally:
            raise
    finally:
        d.quit()


def main():
    root_session()
    user_session()
    shell_session()
    log("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
