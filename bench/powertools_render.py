#!/usr/bin/env python3
"""Peer for bench/: render parameters to a shell env file with Powertools for AWS Lambda
(Python), Parameters utility, the way a Lambda function or a service using it would.

  powertools_render.py --path /app/prod/ [--path ...] [--param KEY=NAME ...] --output FILE

--path: parameters.get_parameters(path, recursive=True, decrypt=True) (GetParametersByPath,
        following NextToken); key = name relative to the path in UPPER_SNAKE.
--param: parameters.get_parameters_by_name({NAME: {}, ...}, decrypt=True) (GetParameters,
        10 names per call).
Writes KEY='value' lines like bench/boto3_render.py (temp file, fsync, 0400, rename). AWS
settings come from the environment (AWS_ENDPOINT_URL, AWS_REGION, credentials).
"""

from __future__ import annotations

import sys

from aws_lambda_powertools.utilities import parameters

from boto3_render import quote, render_args, upper_snake, write_atomically


def main() -> int:
    args = render_args(__doc__)

    values: dict[str, str] = {}
    for path in args.path:
        for rel, value in parameters.get_parameters(path, recursive=True, decrypt=True).items():
            values[upper_snake(rel)] = value
    if args.param:
        keys = dict(reversed(spec.split("=", 1)) for spec in args.param)  # name -> key
        got = parameters.get_parameters_by_name({name: {} for name in keys}, decrypt=True)
        for name, value in got.items():
            values[keys[name]] = value
    write_atomically(args.output, "".join(f"{k}={quote(values[k])}\n" for k in sorted(values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
