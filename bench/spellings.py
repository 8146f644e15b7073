"""Writes the same records in the spellings other writers produce, for bench/compare.sh.

    python3 bench/spellings.py SOURCE.jsonl OUT_DIR

SOURCE is a file in this project's own layout (what `invmetrics demo` writes). Each output
holds the same invocations, so `summary --json` must agree across the same-records group
(own, foreign, python, crlf, framework, launcher) and the folded pairs (many-phases vs
own, many-agents vs own) differ only in the grouping.
"""

import json
import os
import random
import sys
import zlib

# Another writer's key order: a TypeScript class that sets fields in its own order, with
# `cachedTokens` added after `timestamp` by a later change.
FOREIGN_ORDER = [
    "timestamp", "cachedTokens", "agent", "model", "tier", "phase", "taskId", "attempt",
    "invocationId", "durationMs", "inputTokens", "outputTokens", "tokens", "cost",
    "success", "exitCode", "outputParsed", "errorClass",
]


def framework(r):
    """The older framework dialect (agentType, tokensTotal, costUsd, status, startTime)."""
    out = {
        "invocationId": r["invocationId"], "agentType": r["agent"], "phase": r["phase"],
        "durationMs": r["durationMs"], "tokensTotal": r["tokens"], "costUsd": r["cost"],
        "status": "success" if r["success"] else "failed", "exitCode": r["exitCode"],
        "attemptNumber": r["attempt"], "outputParsed": r["outputParsed"],
        "startTime": r["timestamp"],
    }
    for ours, theirs in [("taskId", "taskId"), ("inputTokens", "tokensPrompt"),
                         ("outputTokens", "tokensCompletion"), ("cachedTokens", "cachedTokens"),
                         ("model", "model"), ("tier", "routingTier"), ("errorClass", "errorClass")]:
        if ours in r:
            out[theirs] = r[ours]
    return out


def launcher(r):
    """The launcher dialect: `duration`, `startTime`, nullable exit code, status."""
    out = {k: v for k, v in r.items() if k not in ("durationMs", "success", "timestamp")}
    out["duration"] = r["durationMs"]
    out["startTime"] = r["timestamp"]
    out["status"] = "success" if r["success"] else "failed"
    return out


def main():
    source, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(1)
    names = ["foreign", "python", "crlf", "framework", "launcher", "many-phases", "many-agents"]
    files = {n: open(os.path.join(out_dir, n + ".jsonl"), "w", newline="") for n in names}
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    with open(source, encoding="utf-8") as lines:
        for line in lines:
            r = json.loads(line)
            foreign = {k: r[k] for k in FOREIGN_ORDER if k in r}
            files["foreign"].write(json.dumps(foreign, **compact) + "\n")
            keys = list(r)
            rng.shuffle(keys)
            files["python"].write(json.dumps({k: r[k] for k in keys}, ensure_ascii=False) + "\n")
            files["crlf"].write(line.rstrip("\n") + "\r\n")
            files["framework"].write(json.dumps(framework(r), **compact) + "\n")
            files["launcher"].write(json.dumps(launcher(r), **compact) + "\n")
            task = r.get("taskId", r["invocationId"])
            many = dict(r, phase=r["phase"] * 1000 + zlib.crc32(task.encode()) % 1000)
            files["many-phases"].write(json.dumps(many, **compact) + "\n")
            many = dict(r, agent=f'{r["agent"]}-{zlib.crc32(task.encode()) % 2500}')
            files["many-agents"].write(json.dumps(many, **compact) + "\n")
    for f in files.values():
        f.close()


if __name__ == "__main__":
    main()
