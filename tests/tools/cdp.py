#!/usr/bin/env python3
"""Drive headless Chromium (Debian's chromium) over the DevTools protocol on
a pipe (--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and
4), with the standard library only. Used by the browser tests
(tests/integration/test_web.py) and `make screenshot`.

Chromium is kept off the network: every host name but 127.0.0.1 resolves
to nothing, and background networking, component updates and sync are off.

    tests/tools/cdp.py screenshot URL OUT.png [--width W] [--height H] [--wait S]
"""

import argparse
import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
         "--metrics-recording-only", "--hide-scrollbars", "--mute-audio",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--remote-debugging-pipe"]


class CDPError(Exception):
    pass


class Browser:
    """One headless Chromium with one page (a target attached in flat
    mode). Stop it with close()."""

    def __init__(self, width=1280, height=900, log=None):
        self.dir = tempfile.mkdtemp(prefix="jobq-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.log = open(log or os.devnull, "ab")
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--user-data-dir=" + self.dir, "--window-size=%d,%d" % (width, height),
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, pass_fds=(3, 4),
            preexec_fn=fds, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")
        self.page("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("no answer from chromium in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise CDPError("chromium closed the pipe (exit %s)" % self.proc.poll())
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=30):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise CDPError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)
            del self.events[:-200]

    def page(self, method, params=None, timeout=30):
        return self.call(method, params, self.session, timeout)

    def goto(self, url, timeout=20):
        self.page("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", timeout, "the page to load")

    def eval(self, expression, timeout=30):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            raise CDPError("%s: %s" % (expression, r["exceptionDetails"].get("exception", {})
                                       .get("description", r["exceptionDetails"])))
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=15, what=None):
        """Poll a JavaScript expression until it is truthy; return its value
        (true for an element)."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval("(() => { const v = (%s); return v instanceof Node ? true : v; })()" % expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %g s waiting for %s" % (timeout, what or expression))
            time.sleep(0.1)

    def text(self):
        return self.eval("document.body.innerText")

    def screenshot(self, path, full=True):
        if full:
            h = self.eval("Math.ceil(document.documentElement.scrollHeight)")
            w = self.eval("document.documentElement.clientWidth")
            self.page("Emulation.setDeviceMetricsOverride",
                      {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})
            time.sleep(0.3)
        data = self.page("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="headless Chromium over the DevTools pipe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("screenshot")
    s.add_argument("url")
    s.add_argument("out")
    s.add_argument("--width", type=int, default=1440)
    s.add_argument("--height", type=int, default=1000)
    s.add_argument("--wait", type=float, default=3.0, help="seconds to let the page run first")
    a = ap.parse_args()
    b = Browser(a.width, a.height)
    try:
        b.goto(a.url)
        time.sleep(a.wait)
        b.screenshot(a.out)
    finally:
        b.close()


if __name__ == "__main__":
    sys.exit(main())
