#!/usr/bin/env python3
"""Prints one stage of a Dockerfile as a bash script, so a machine without a Docker engine can run the commands
that `docker build` would run in that stage, against a copy of the build context.

    dockerfile-stage.py deploy/docker/Dockerfile build SERVICE=MailMesh.Ingress TARGETARCH=amd64 > stage.sh

ARG and ENV become shell variables (build arguments given here override ARG defaults), WORKDIR becomes a `cd`
relative to the context copy (the script's working directory), RUN runs its command with `--mount` options dropped,
and COPY is skipped: the script runs in a copy of the whole context, where every source already is. Absolute paths
in RUN (an output directory such as /app) are redirected under $STAGE_ROOT. Exits 2 if the stage is not found.
"""
import re
import shlex
import sys


def logical_lines(text):
    """Dockerfile lines with backslash continuations joined and comments dropped."""
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        yield current + stripped
        current = ""
    if current:
        yield current


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, stage, *assignments = sys.argv[1:]
    args = dict(a.split("=", 1) for a in assignments)
    lines = list(logical_lines(open(path, encoding="utf-8").read()))
    out = ["set -euo pipefail", 'CONTEXT="$(pwd)"', 'STAGE_ROOT="${STAGE_ROOT:?set STAGE_ROOT to a scratch directory}"']
    in_stage = False
    found = False
    for line in lines:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            in_stage = bool(re.search(r"\bAS\s+" + re.escape(stage) + r"\s*$", rest, re.IGNORECASE))
            found = found or in_stage
            continue
        if not in_stage:
            continue
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            value = args.get(name, default)
            out.append(f"{name}={shlex.quote(value)}")
        elif instruction == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", rest):
                out.append(f"export {name}={value}")
        elif instruction == "WORKDIR":
            out.append('cd "$CONTEXT"')
        elif instruction == "RUN":
            command = re.sub(r"--mount=\S+\s*", "", rest).strip()
            # An absolute output path of the image (-o /app) goes under the scratch directory instead.
            command = re.sub(r"(-o|--output)\s+/(\S+)", r'\1 "$STAGE_ROOT/\2"', command)
            out.append(command)
        elif instruction in ("COPY", "SHELL", "LABEL", "EXPOSE", "USER", "ENTRYPOINT", "CMD"):
            continue
        else:
            print(f"dockerfile-stage.py: {instruction} is not supported", file=sys.stderr)
            return 2
    if not found:
        print(f"dockerfile-stage.py: no stage named {stage} in {path}", file=sys.stderr)
        return 2
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
