"""The example app: reads its configuration from the environment once, at start, as most
services do. ssm-injector exec --watch starts it again when a value changes."""

import os
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
names = sorted(k for k in os.environ if k.isupper() and not k.startswith(("SSM_INJECTOR_", "AWS_")))
print(f"started with {len(names)} variables from the environment: {', '.join(names)}", flush=True)
while True:
    time.sleep(3600)
