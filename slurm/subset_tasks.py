#!/usr/bin/python3
"""Write a job file that keeps the first N [[tasks]] of another one (weak scaling).

usage: /usr/bin/python3 slurm/subset_tasks.py JOB.toml N OUT.toml [--name NAME]
       /usr/bin/python3 slurm/subset_tasks.py JOB.toml --count      (prints the number of tasks)

The text is copied line by line (comments, ${VAR} paths and formatting stay as they are): every
line outside [[tasks]] blocks, and the first N [[tasks]] blocks with their sub-tables
([tasks.x] / [[tasks.x]]). `name = ...` at the top is replaced by NAME (default JOBNAME-nN) so
that the results say which subset they hold. The result is read back with tomllib and must
equal the original with its task list cut to N and the new name; otherwise nothing is written
and the exit code is 1. Python >= 3.11 (tomllib; Debian 12's /usr/bin/python3)."""
import argparse
import re
import sys
import tomllib

HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
NAME = re.compile(r"^(\s*name\s*=\s*)(\"[^\"]*\"|'[^']*')(.*)$")


def subset(text, n, name):
    out, tasks_seen, in_tasks, renamed, in_root = [], 0, False, False, True
    depth = 0  # open brackets of a multi-line array or inline table: no headers inside
    for line in text.splitlines(keepends=True):
        m = HEADER.match(line) if depth == 0 else None
        if m:
            in_root = False
            key = m.group(2).replace(" ", "")
            if m.group(1) == "[[" and key == "tasks":
                tasks_seen += 1
                in_tasks = True
            elif not (key.startswith("tasks.") and in_tasks):
                in_tasks = False
        keep = not in_tasks or tasks_seen <= n
        if keep and in_root and depth == 0 and not renamed and NAME.match(line):
            line = NAME.sub(lambda g: g.group(1) + '"' + name + '"' + g.group(3), line)
            renamed = True
        if keep:
            out.append(line)
        depth = max(0, depth + bracket_balance(line))
    return "".join(out)


def bracket_balance(line):
    """Opening minus closing brackets/braces outside strings and comments (good enough for
    the arrays and inline tables of a job file; the result is checked with tomllib anyway)."""
    bal, quote, i = 0, None, 0
    s = line.rstrip("\n")
    if HEADER.match(s):
        return 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            break
        elif c in "[{":
            bal += 1
        elif c in "]}":
            bal -= 1
        i += 1
    return bal


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job")
    p.add_argument("n", nargs="?", type=int)
    p.add_argument("out", nargs="?")
    p.add_argument("--name")
    p.add_argument("--count", action="store_true", help="print the number of [[tasks]] and exit")
    a = p.parse_args()
    try:
        with open(a.job, "rb") as f:
            raw = f.read()
        orig = tomllib.loads(raw.decode())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        print(f"subset_tasks: {a.job}: cannot read it as TOML ({e})", file=sys.stderr)
        return 1
    tasks = orig.get("tasks", [])
    if a.count:
        print(len(tasks))
        return 0
    if a.n is None or a.out is None:
        p.error("give N and OUT.toml (or --count)")
    if not 1 <= a.n <= len(tasks):
        print(f"subset_tasks: {a.job}: N = {a.n} but the file has {len(tasks)} tasks", file=sys.stderr)
        return 1
    name = a.name or f"{orig.get('name', 'job')}-n{a.n}"
    text = subset(raw.decode(), a.n, name)
    want = dict(orig, tasks=tasks[: a.n], name=name)
    try:
        got = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        print(f"subset_tasks: {a.job}: the cut text does not parse ({e})", file=sys.stderr)
        return 1
    if got != want:
        print(f"subset_tasks: {a.job}: the cut text does not read back as the first {a.n} tasks", file=sys.stderr)
        return 1
    with open(a.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
