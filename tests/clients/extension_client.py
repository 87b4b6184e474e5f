"""Reads through the local endpoint the way Lambda code calls the AWS Parameters and
Secrets Lambda Extension (the AWS documentation's pattern: urllib, no boto3): the port from
PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, the token from AWS_SESSION_TOKEN (in a pod: the file
SSM_INJECTOR_SERVE_TOKEN_FILE names) in the header X-Aws-Parameters-Secrets-Token.

Usage: python extension_client.py READS_JSON
READS_JSON: a list of [path, {query}, token_or_null]; a null token sends the environment's.
Prints one JSON line per read: {"status": N, "body": parsed JSON or text}.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

port = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")
# In a pod, the token is in the file the injector names (SSM_INJECTOR_SERVE_TOKEN_FILE);
# on Lambda, it is AWS_SESSION_TOKEN.
token_file = os.environ.get("SSM_INJECTOR_SERVE_TOKEN_FILE")
if token_file:
    with open(token_file) as f:
        session_token = f.read().strip()
else:
    session_token = os.environ.get("AWS_SESSION_TOKEN")


def get(path, query, token):
    url = f"http://localhost:{port}{path}?{urllib.parse.urlencode(query)}"
    headers = {}
    if token != "":
        headers["X-Aws-Parameters-Secrets-Token"] = token if token is not None else session_token
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode()
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    return {"status": status, "body": body}


for path, query, token in json.loads(sys.argv[1]):
    print(json.dumps(get(path, query, token)), flush=True)
