"""harness.py: what the tests of tests/levels share: a named check that
counts failures, running a program with an expected exit status, and a
checkpoint's tensors and metadata as dicts."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from spdl import safetensors  # noqa: E402


class Harness:
    def __init__(self, name):
        self.name = name
        self.fails = []

    def check(self, ok, what):
        print("%s: %s %s" % (self.name, "ok  " if ok else "FAIL", what))
        if not ok:
            self.fails.append(what)

    def run(self, *argv, expect=0):
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
        if expect is not None and r.returncode != expect:
            print(r.stdout + r.stderr)
            raise SystemExit("%s: %s exited %d, not %d" % (self.name, " ".join(map(str, argv)), r.returncode, expect))
        return r

    def kill_and_resume(self, exe, args, once, killed, level):
        """Runs `exe *args --out killed`, kills it once its log has a row of level `level`, resumes it and
        checks that the result has the bytes of `once`, the same run in one go."""
        log = killed[:-len(".safetensors")] + ".log.csv"
        for stale in (killed, log):  # an earlier run's
            if os.path.exists(stale):
                os.unlink(stale)
        p = subprocess.Popen([exe, *args, "--out", killed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while time.time() - t0 < 120 and p.poll() is None:
            if os.path.exists(log) and any(r.endswith(",%d" % level) for r in open(log).read().splitlines()):
                break
            time.sleep(0.005)
        p.send_signal(signal.SIGKILL)
        p.wait()
        _, meta = tensors(killed)
        self.check(p.returncode == -signal.SIGKILL, "killed at level %s, epoch %s of it" % (meta["level"], meta["epoch"]))
        self.run(exe, *args, "--out", killed, "--resume", killed)
        with open(once, "rb") as a, open(killed, "rb") as b:
            self.check(a.read() == b.read(), "resumed after the kill: the bits of the run in one go")

    def done(self):
        print("%s: %d failed" % (self.name, len(self.fails)))
        return 1 if self.fails else 0


def tensors(path):
    t, meta = safetensors.read(path)
    return {n: a for n, a in t}, dict(meta)
