"""Handler plugins end to end: `make install DESTDIR=...` SDK, sha256.c built
out of tree through pkg-config and loaded by jobqd with the tests/plugins ones
and a non-ELF file (bad ones refused with one line each, the rest working,
a crashing handler contained); `make uninstall`."""

import filecmp
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jobqtest import Events, REPO, build_dir, get_result, job, makefile_version, push, wait_for

PREFIX = "/usr"
# Everything `make install DESTDIR=d PREFIX=/usr` puts down (default
# SYSCONFDIR, LIBDIR, PLUGINDIR and UNITDIR of the Makefile).
INSTALLED_FILES = {
    "usr/bin/jobqd",
    "usr/bin/jobq",
    "usr/include/jobq/plugin.h",
    "usr/lib/pkgconfig/jobq.pc",
    "etc/jobq/jobq.conf",
    "lib/systemd/system/jobqd.service",
    "lib/systemd/system/jobqd@.service",
}
PLUGINDIR = "usr/lib/jobq/plugins"

# file in the plugin dir -> the reason its "refused" line must give
REFUSED = {
    "notelf.so": "cannot load",
    "no_entry.so": "no jobq_plugin_init",
    "wrong_abi.so": "built for plugin ABI",
    "duplicate.so": "'echo' is already registered",
    "init_fails.so": "jobq_plugin_init failed",
}
# file -> plugin name in its "loaded" line
LOADED = {"good.so": "good", "crashy.so": "crashy", "sha256.so": "sha256"}
TEST_PLUGINS = ("good", "wrong_abi", "no_entry", "duplicate", "init_fails", "crashy")


def make(*args, timeout=900):
    """Run make in the repo root with a clean make environment (not the
    jobserver or variables of a `make test` we may be running under)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "make %s failed (%d):\n%s\n%s" % (
        " ".join(args), r.returncode, r.stdout[-4000:], r.stderr[-4000:])
    return r


def install(dest):
    return make("install", "DESTDIR=%s" % dest, "PREFIX=%s" % PREFIX)


def files_under(root):
    """Relative paths of the files (and symlinks) under root."""
    root = Path(root)
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


def pkg_config(dest, *args, sysroot=True):
    env = dict(os.environ, PKG_CONFIG_PATH=str(Path(dest) / "usr/lib/pkgconfig"))
    env.pop("PKG_CONFIG_LIBDIR", None)
    if sysroot:
        env["PKG_CONFIG_SYSROOT_DIR"] = str(dest)
    else:
        env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    r = subprocess.run(["pkg-config", *args, "jobq"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, "pkg-config %s jobq: %s" % (" ".join(args), r.stderr)
    return r.stdout.strip()


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """An installed tree (DESTDIR) and sha256.so built out of tree against
    it, exactly as a user would: cc ... $(pkg-config --cflags --libs jobq)."""
    base = tmp_path_factory.mktemp("sdk")
    dest = base / "dest"
    install(dest)

    oot = base / "sha256-src"
    oot.mkdir()
    shutil.copy(REPO / "src/plugins/sha256.c", oot / "sha256.c")
    env = dict(os.environ, PKG_CONFIG_PATH=str(dest / "usr/lib/pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=str(dest))
    env.pop("PKG_CONFIG_LIBDIR", None)
    line = "cc -shared -fPIC -o sha256.so sha256.c $(pkg-config --cflags --libs jobq) -lcrypto"
    r = subprocess.run(["sh", "-c", line], cwd=oot, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, "out-of-tree build failed:\n%s\n%s" % (line, r.stderr)
    # The header it compiled against is the installed one.
    deps = subprocess.run(["sh", "-c", "cc -M sha256.c $(pkg-config --cflags jobq)"], cwd=oot,
                          env=env, capture_output=True, text=True, timeout=60)
    assert deps.returncode == 0, deps.stderr
    return {"dest": dest, "so": oot / "sha256.so", "deps": deps.stdout}


def test_install_lays_down_the_sdk(sdk):
    dest = sdk["dest"]
    assert files_under(dest) == INSTALLED_FILES
    assert (dest / PLUGINDIR).is_dir() and not any((dest / PLUGINDIR).iterdir())
    assert filecmp.cmp(dest / "usr/include/jobq/plugin.h", REPO / "include/jobq/plugin.h",
                       shallow=False)
    assert os.access(dest / "usr/bin/jobqd", os.X_OK)

    pc = (dest / "usr/lib/pkgconfig/jobq.pc").read_text()
    assert "@" not in pc, "unsubstituted @VAR@ in jobq.pc:\n" + pc
    assert pkg_config(dest, "--modversion") == makefile_version()
    assert pkg_config(dest, "--variable=plugindir", sysroot=False) == "/" + PLUGINDIR
    assert pkg_config(dest, "--libs") == ""  # the host hands plugins their API
    cflags = pkg_config(dest, "--cflags").split()
    assert cflags == ["-I%s/usr/include" % dest], cflags

    assert re.search(r"(^|\s)%s(\s|\\|$)" % re.escape(str(dest / "usr/include/jobq/plugin.h")),
                     sdk["deps"]), "sha256.c was not compiled against the installed header:\n" + sdk["deps"]
    exported = subprocess.run(["nm", "-D", "--defined-only", str(sdk["so"])],
                              capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"\bT jobq_plugin_init$", exported, re.M), exported


@pytest.fixture
def plugin_daemon(sdk, tmp_path, jobqd, monkeypatch):
    """jobqd with a plugin dir holding the out-of-tree sha256.so, the test
    plugins and notelf.so; JOBQ_SHA256_ROOT is tmp_path/files."""
    root = tmp_path / "files"
    root.mkdir()
    monkeypatch.setenv("JOBQ_SHA256_ROOT", str(root))
    d = jobqd(start=False)
    plugdir = d.plugins_dir
    shutil.copy(sdk["so"], plugdir / "sha256.so")
    for name in TEST_PLUGINS:
        so = build_dir() / "plugins" / (name + ".so")
        assert so.exists(), "%s not built (make plugins)" % so
        shutil.copy(so, plugdir / so.name)
    (plugdir / "notelf.so").write_text("this is a text file, not an ELF shared object\n")
    d.start()
    d.root = root
    # Plugins load before workers start: wait for every verdict in the log.
    wait_for(lambda: all(("plugin %s/%s " % (plugdir, f)) in d.log()
                         for f in list(REFUSED) + list(LOADED)),
             15, 0.05, "a loaded/refused line for every plugin")
    return d


def test_sha256_plugin_built_out_of_tree(r, plugin_daemon):
    d = plugin_daemon
    data = os.urandom(300 * 1024) + b"tail"  # several reads of the plugin's buffer
    (d.root / "data.bin").write_bytes(data)
    odd = 'naïve "quoted" \\ name.txt'
    (d.root / odd).write_bytes(b"abc")
    (d.root.parent / "outside.txt").write_text("not yours")

    push(r, job("sha256", id="s1", args={"path": "data.bin"}))
    push(r, job("sha256", id="s2", args={"path": str(d.root / odd)}))
    push(r, job("sha256", id="s3", args={"path": "../outside.txt"}))
    push(r, job("sha256", id="s4", args={"path": str(d.root.parent / "outside.txt")}))
    push(r, job("sha256", id="s5", args={"path": "missing.bin"}))

    res = get_result(r, "s1")
    assert res["status"] == "ok", res
    assert res["result"] == {"path": "data.bin", "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()}
    res = get_result(r, "s2")
    assert res["status"] == "ok", res
    assert res["result"] == {"path": str(d.root / odd), "bytes": 3,
                             "sha256": hashlib.sha256(b"abc").hexdigest()}
    for jid in ("s3", "s4"):
        res = get_result(r, jid)
        assert res["status"] == "failed", res
        assert "outside the allowed directory %s" % d.root in res["error"], res["error"]
        assert res["result"] is None
    res = get_result(r, "s5")
    assert res["status"] == "failed" and "missing.bin: no such file" in res["error"], res


def test_plugin_progress_reaches_the_events_channel(r, plugin_daemon):
    """sha256 reports progress every 16 MiB: a "progress" event with the
    fraction and message, published while the job runs (before its "ok")."""
    d = plugin_daemon
    size = 40 << 20
    with open(d.root / "big.bin", "wb") as f:
        f.truncate(size)  # sparse: 40 MiB of zeros
    events = Events(r)
    try:
        push(r, job("sha256", id="big", args={"path": "big.bin"}))
        events.wait(lambda e: e.get("id") == "big" and e.get("event") == "ok", 30)
    finally:
        events.close()
    mine = [e for e in events.seen if e.get("id") == "big"]
    kinds = [e["event"] for e in mine]
    assert "progress" in kinds and kinds.index("progress") < kinds.index("ok"), kinds
    for e in (e for e in mine if e["event"] == "progress"):
        assert e["message"] == "hashing" and e["handler"] == "sha256" and e["attempt"] == 1, e
        assert 16 / 40 - 0.01 <= e["progress"] < 1, e
        assert e["worker"] == mine[-1]["worker"], mine
    assert get_result(r, "big")["result"]["bytes"] == size


def test_good_plugin_and_builtins_work(r, plugin_daemon):
    d = plugin_daemon
    push(r, job("plugin_hello", id="h1", args={"name": "jobq"}))
    push(r, job("plugin_hello", id="h2"))
    push(r, job("echo", id="e1", args={"still": "the built-in"}))
    assert get_result(r, "h1")["result"] == {"hello": "jobq"}
    assert get_result(r, "h2")["result"] == {"hello": "world"}
    res = get_result(r, "e1")
    assert res["status"] == "ok" and res["result"] == {"still": "the built-in"}, res
    # api->log from a worker: tagged with the job
    wait_for(lambda: re.search(r"job=h1 .*plugin_hello: greeting jobq", d.log()), 5, 0.05,
             "the plugin's log line for job h1")


def test_bad_plugins_are_refused(r, plugin_daemon):
    d = plugin_daemon
    log = d.log()
    plugdir = d.plugins_dir
    for f, reason in REFUSED.items():
        lines = [l for l in log.splitlines() if "plugin %s/%s refused: " % (plugdir, f) in l]
        assert len(lines) == 1, "want one refused line for %s, got %r\nlog:\n%s" % (f, lines, log)
        assert reason in lines[0], "%s refused without %r: %s" % (f, reason, lines[0])
    for f, name in LOADED.items():
        assert "plugin %s/%s loaded (%s)" % (plugdir, f, name) in log, log
    assert log.count(" refused: ") == len(REFUSED), log
    d.assert_running()

    # what the refused plugins registered is gone: those jobs fail cleanly
    for i, name in enumerate(("never_there", "dup_first", "wrong_abi_hello")):
        push(r, job(name, id="gone%d" % i))
        res = get_result(r, "gone%d" % i)
        assert res["status"] == "failed" and "unknown handler '%s'" % name in res["error"], res


def test_crashing_plugin_is_contained(r, plugin_daemon):
    d = plugin_daemon
    push(r, job("plugin_crash", id="c1", max_attempts=1))
    res = get_result(r, "c1", timeout=15)
    assert res["status"] == "failed", res
    assert "SIGSEGV" in res["error"], res["error"]
    d.assert_running()
    # the daemon keeps serving, plugins included, on new workers
    for i in range(4):
        push(r, job("plugin_hello", id="after%d" % i, args={"name": str(i)}))
    for i in range(4):
        assert get_result(r, "after%d" % i, timeout=15)["result"] == {"hello": str(i)}
    push(r, job("echo", id="after-echo", args=[1]))
    assert get_result(r, "after-echo")["result"] == [1]
    d.assert_running()


def test_uninstall_removes_what_install_put(tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    assert files_under(dest) == INSTALLED_FILES
    # a second install keeps the admin's config
    conf = dest / "etc/jobq/jobq.conf"
    conf.write_text(conf.read_text() + "; edited by the admin\n")
    edited = conf.read_text()
    install(dest)
    assert conf.read_text() == edited, "make install overwrote an existing jobq.conf"

    out = make("uninstall", "DESTDIR=%s" % dest, "PREFIX=%s" % PREFIX)
    assert files_under(dest) == {"etc/jobq/jobq.conf"}, out.stdout
    assert conf.read_text() == edited
    for gone in ("usr/include/jobq", PLUGINDIR, "usr/lib/jobq"):
        assert not (dest / gone).exists(), "%s left behind by make uninstall" % gone
