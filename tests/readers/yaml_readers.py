"""Real Python readers of the yaml output, for tests/readers.rs.

    python yaml_readers.py READER[,READER...] FILE...

prints one JSON line per reader and file, in that order:
{"reader": R, "file": F, "pairs": [[key, value], ...]} with every key and value a JSON
string when the reader gave back a string, or {"type": T, "text": ...} when it gave back
something else (a bool, an int, a date, None); or {"reader": R, "file": F, "error": E}
when the reader refused the file.
"""

import json
import sys

import yaml
from ruamel.yaml import YAML


def pyyaml(loader):
    def read(data):
        return yaml.load(data, Loader=loader)
    return read


def ruamel(typ):
    def read(data):
        return YAML(typ=typ, pure=True).load(data)
    return read


READERS = {
    # PyYAML: YAML 1.1. yaml.safe_load and yaml.full_load (yaml.load's usual Loader).
    "pyyaml-safe": pyyaml(yaml.SafeLoader),
    "pyyaml-full": pyyaml(yaml.FullLoader),
    # ruamel.yaml: YAML 1.2 by default; "safe" and the round-trip loader ("rt").
    "ruamel-safe": ruamel("safe"),
    "ruamel-rt": ruamel("rt"),
}
# The libyaml (C) loaders: the pinned PyYAML wheel is built with libyaml, and a PyYAML
# without it fails here rather than testing less.
READERS["pyyaml-csafe"] = pyyaml(yaml.CSafeLoader)
READERS["pyyaml-cfull"] = pyyaml(yaml.CFullLoader)


def scalar(x):
    # A str subclass (ruamel's quoted scalar types) is still a string to the program.
    if isinstance(x, str):
        return str(x)
    return {"type": type(x).__name__, "text": str(x)}


def main():
    names = sys.argv[1].split(",")
    for name in names:
        if name not in READERS:
            sys.exit(f"unknown reader {name!r}; have {sorted(READERS)}")
    for path in sys.argv[2:]:
        data = open(path, "rb").read()
        for name in names:
            line = {"reader": name, "file": path}
            try:
                doc = READERS[name](data)
                if not isinstance(doc, dict):
                    raise ValueError(f"the document is a {type(doc).__name__}, not a mapping")
                line["pairs"] = [[scalar(k), scalar(v)] for k, v in doc.items()]
            except Exception as e:  # noqa: BLE001 - every refusal is reported, not raised
                line["error"] = f"{type(e).__name__}: {e}"
            print(json.dumps(line), flush=True)


main()
