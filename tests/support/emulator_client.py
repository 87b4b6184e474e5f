"""Python client for tests/support/emulator.py (moto + fault proxy), shared by the demo
and the benchmarks. The emulator stops when this client closes its stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMULATOR = os.path.join(REPO, "tests", "support", "emulator.py")


class Emulator:
    """The emulator as a child process; `moto` and `proxy` are its URLs."""

    def __init__(self, who: str = "emulator") -> None:
        self.proc = subprocess.Popen([sys.executable, EMULATOR], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=REPO)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit(f"{who}: the emulator did not start (exit {self.proc.returncode})")
        self.urls = json.loads(line)
        self.moto, self.proxy = self.urls["moto"], self.urls["proxy"]

    def call(self, **cmd):
        """One protocol command; raises on an error answer."""
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator died")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"emulator {cmd.get('cmd')} {cmd.get('op', '')}: {reply['error']}")
        return reply["result"]

    def aws(self, service: str, op: str, **args):
        """A boto3 call against moto."""
        return self.call(cmd="aws", service=service, op=op, args=args)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
