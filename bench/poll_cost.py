#!/usr/bin/env python3
"""What one watch poll costs, three ways, on one moto (run with the venv's python):

  refetch   GetParameters, 10 names per call, WithDecryption (what `render --watch` did
            until it held values between polls: every SecureString decrypted every poll)
  versions  GetParameters, 10 names per call, WithDecryption=false (what `render --watch`
            does now when nothing changed: versions only, nothing decrypted)
  describe  DescribeParameters with a Name filter, 50 names per call: versions only, no
            decryption, but it needs ssm:DescribeParameters on "*" and cannot resolve labels

Prints API calls per poll (counted by the emulator's proxy) and the median wall time of
one poll over --runs polls, for N parameters (--n, default 100).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from emulator_client import Emulator  # noqa: E402

import boto3  # noqa: E402


def chunks(xs, n):
    return [xs[i:i + n] for i in range(0, len(xs), n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    emu = Emulator("poll_cost")
    try:
        names = [f"/poll/p{i:04d}" for i in range(args.n)]
        for i, name in enumerate(names):
            emu.aws("ssm", "put_parameter", Name=name, Value=f"v{i}", Type="SecureString")
        ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=emu.proxy,
                           aws_access_key_id="testing", aws_secret_access_key="testing")

        def refetch():
            for batch in chunks(names, 10):
                ssm.get_parameters(Names=batch, WithDecryption=True)

        def versions():
            for batch in chunks(names, 10):
                ssm.get_parameters(Names=batch, WithDecryption=False)

        def describe():
            for batch in chunks(names, 50):
                ssm.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": batch}],
                    MaxResults=50)

        print(f"{'poll':<10} {'API calls':>10} {'median ms':>10}   (N = {args.n} SecureStrings)")
        for label, fn in [("refetch", refetch), ("versions", versions), ("describe", describe)]:
            emu.call(cmd="reset_calls")
            fn()
            calls = sum(emu.call(cmd="calls").values())
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1000)
            print(f"{label:<10} {calls:>10} {statistics.median(times):>10.1f}")
    finally:
        emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
