#!/usr/bin/env python3
"""Writes dagd-openapi.json, dagd's OpenAPI document, from Airflow's and dagd.yaml.

usage: api/openapi/generate.py [--check]
  --check  exit 1 when dagd-openapi.json is not what this script would write (CI, reviews)

Airflow's operations that dagd serves are copied with only the parameters dagd accepts (plus
the query parameters dagd adds to them), the request-body fields it does not support removed,
the response properties dagd adds (extra_properties) added, and the responses dagd may add; dagd's own operations are added verbatim. Components keep Airflow's names and definitions; only those the
operations reach are kept. Needs Python 3 and PyYAML (Debian: python3-yaml); developers run it
after changing dagd.yaml, and commit the result (the build embeds the JSON, no Python needed).
"""
import copy
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
AIRFLOW = os.path.join(HERE, "airflow-v2-3.2.1.yaml")
DAGD = os.path.join(HERE, "dagd.yaml")
OUTPUT = os.path.join(HERE, "dagd-openapi.json")
METHODS = ("get", "put", "post", "delete", "patch")


def refs(node, out):
    """Adds the component schema names `node` refers to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            out.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            refs(value, out)
    elif isinstance(node, list):
        for value in node:
            refs(value, out)


def generate():
    with open(AIRFLOW, encoding="utf-8") as f:
        airflow = yaml.safe_load(f)
    with open(DAGD, encoding="utf-8") as f:
        dagd = yaml.safe_load(f)
    schemas = copy.deepcopy(airflow["components"]["schemas"])
    common = {}
    for status in dagd["common_responses"]:
        common[str(status)] = {
            "description": {"403": "Forbidden", "500": "Internal Server Error",
                            "503": "Service Unavailable", "504": "Gateway Timeout"}[str(status)],
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/HTTPExceptionResponse"}}},
        }

    paths = {}
    for path, methods in dagd["operations"].items():
        item = airflow["paths"].get(path)
        if item is None:
            sys.exit(f"generate.py: {path} is not in Airflow's document")
        for method, accepted in methods.items():
            if method not in item:
                sys.exit(f"generate.py: {method.upper()} {path} is not in Airflow's document")
            op = copy.deepcopy(item[method])
            params = []
            known = set()
            for p in op.get("parameters", []):
                known.add(p["name"])
                if p["in"] == "path" or p["name"] in accepted:
                    params.append(p)
            missing = set(accepted) - known
            if missing:
                sys.exit(f"generate.py: {method.upper()} {path}: no parameters {sorted(missing)}")
            for extra in dagd.get("extra_parameters", {}).get(path, {}).get(method, []):
                if extra["name"] in known:
                    sys.exit(f"generate.py: {method.upper()} {path}: Airflow has {extra['name']}")
                params.append(copy.deepcopy(extra))
            if params:
                op["parameters"] = params
            else:
                op.pop("parameters", None)
            for status, response in common.items():
                op["responses"].setdefault(status, copy.deepcopy(response))
            for status in dagd.get("extra_responses", {}).get(path, {}).get(method, []):
                op["responses"].setdefault(str(status), {
                    "description": {"400": "Bad Request", "409": "Conflict"}[str(status)],
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/HTTPExceptionResponse"}}},
                })
            extra = dagd.get("extra_content", {}).get(path, {}).get(method, {})
            for status, content in extra.items():
                op["responses"][str(status)].setdefault("content", {}).update(content)
            paths.setdefault(path, {})[method] = op
    for path, item in dagd["paths"].items():
        for method, op in item.items():
            op = copy.deepcopy(op)
            for status, response in common.items():
                op["responses"].setdefault(status, copy.deepcopy(response))
            paths.setdefault(path, {})[method] = op

    for name, fields in dagd.get("unsupported_body_fields", {}).items():
        for field in fields:
            if field not in schemas[name]["properties"]:
                sys.exit(f"generate.py: {name} has no field {field}")
            del schemas[name]["properties"][field]

    for name, fields in dagd.get("extra_properties", {}).items():
        for field, schema in fields.items():
            if field in schemas[name]["properties"]:
                sys.exit(f"generate.py: {name} already has a field {field}")
            schemas[name]["properties"][field] = copy.deepcopy(schema)

    # Only the components the operations reach, transitively.
    wanted = set()
    refs(paths, wanted)
    pending = list(wanted)
    while pending:
        found = set()
        refs(schemas[pending.pop()], found)
        for name in found - wanted:
            wanted.add(name)
            pending.append(name)

    return {
        "openapi": airflow["openapi"],
        "info": {
            "title": dagd["info"]["title"],
            "description": dagd["info"]["description"],
            "version": airflow["info"]["version"],
        },
        "paths": {p: paths[p] for p in sorted(paths)},
        "components": {
            "schemas": {n: schemas[n] for n in sorted(wanted)},
            "securitySchemes": airflow["components"]["securitySchemes"],
        },
    }


def main():
    text = json.dumps(generate(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if sys.argv[1:] == ["--check"]:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("generate.py: dagd-openapi.json is stale; run api/openapi/generate.py")
        return
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
