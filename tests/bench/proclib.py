"""Process and timing helpers shared by the bench scripts that start their
own servers (cluster.py, tls.py): bounded waits, and stopping what they
started by pid (a whole session for jobqd)."""
import os
import signal
import subprocess
import time


def wait(pred, timeout, what):
    """Poll pred until true; RuntimeError naming what after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise RuntimeError("timed out waiting for %s" % what)


def stop_session(p, timeout=20):
    """SIGTERM the session p leads (jobqd and its workers), SIGKILL after timeout."""
    if p.poll() is not None:
        return
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def stop(p, timeout=10):
    """SIGTERM p, SIGKILL after timeout."""
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
