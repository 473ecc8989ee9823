"""A stand-in for the Lambda runtime: one warm process, only the artifact on sys.path.

Run as ``python -I -S lambda_runtime.py ARTIFACT_DIR module.handler``; reads one JSON event per
line on stdin, invokes the handler, writes one JSON result per line on stdout. The function's own
output (its JSON logs) goes to stderr so it cannot mix with the results.
"""

import importlib
import json
import sys


def main() -> None:
    artifact, handler_path = sys.argv[1], sys.argv[2]
    sys.path.insert(0, artifact)  # -I -S: nothing else but the standard library
    results = sys.stdout
    sys.stdout = sys.stderr
    module_name, function_name = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    for line in sys.stdin:
        result: dict[str, object]
        try:
            handler(json.loads(line), None)
            result = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, as Lambda does
            result = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
        results.write(json.dumps(result) + "\n")
        results.flush()


if __name__ == "__main__":
    main()
