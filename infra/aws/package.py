#!/usr/bin/env python3
"""`make package`: every function of template.yaml built by cargo-lambda into a zip, and each zip
checked against the size budget.

Usage: infra/aws/package.py [--arch arm64|x86_64] [--budget-mib N]

Each package is built on its own (`cargo lambda build -p PACKAGE`), as SAM builds one function at a
time, so no binary links features that only another package (the local server's SQLite, say)
asks for. CARGO_TARGET_DIR is set by the Makefile (target/lambda) so the main target dir is left
alone. Zips land in target/lambda/zip/BINARY/bootstrap.zip.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cfn  # noqa: E402
from rustscan import workspace  # noqa: E402

TRIPLES = {"arm64": "aarch64-unknown-linux-gnu", "x86_64": "x86_64-unknown-linux-gnu"}
# Lambda's own limits: 50 MiB for a zip uploaded directly, 250 MiB unzipped.
DEFAULT_BUDGET_MIB = 16.0
MIB = 1024 * 1024


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=sorted(TRIPLES), default="arm64")
    p.add_argument("--budget-mib", type=float, default=float(os.environ.get("LAMBDA_ZIP_BUDGET_MIB", DEFAULT_BUDGET_MIB)))
    args = p.parse_args(argv)

    triple = TRIPLES[args.arch]
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
    if not (Path(sysroot) / "lib" / "rustlib" / triple / "lib").is_dir():
        print(
            f"package: the Rust standard library for {triple} is not installed: run `rustup target add {triple}` "
            f"(or, on a machine that cannot fetch it, `make package LAMBDA_ARCH=x86_64` to measure sizes; "
            f"the template deploys arm64)",
            file=sys.stderr,
        )
        return 1

    template = cfn.load()
    binaries = sorted(f["Metadata"]["BuildProperties"]["Binary"] for f in cfn.functions(template).values())
    packages = workspace(cfn.ROOT)
    by_package: dict[str, list[str]] = {}
    for b in binaries:
        owner = [pk.name for pk in packages.values() if b in pk.bins]
        if not owner:
            print(f"package: no workspace package has the binary `{b}` that template.yaml deploys", file=sys.stderr)
            return 1
        by_package.setdefault(owner[0], []).append(b)

    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", cfn.ROOT / "target" / "lambda"))
    zips = (target_dir if target_dir.is_absolute() else cfn.ROOT / target_dir) / "zip"
    for package, bins in sorted(by_package.items()):
        cmd = ["cargo", "lambda", "build", "--release", "--target", triple, "--output-format", "zip",
               "--lambda-dir", str(zips), "-p", package] + [a for b in bins for a in ("--bin", b)]
        print("package:", " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=cfn.ROOT).returncode != 0:
            print(f"package: building {package} failed", file=sys.stderr)
            return 1

    over = []
    print(f"\n{'function':<18} {'zip MiB':>8} {'unzipped MiB':>13}   ({args.arch}; budget {args.budget_mib:g} MiB a zip)")
    for b in binaries:
        path = zips / b / "bootstrap.zip"
        if not path.is_file():
            print(f"package: {path} was not produced", file=sys.stderr)
            return 1
        size = path.stat().st_size
        with zipfile.ZipFile(path) as z:
            unzipped = sum(i.file_size for i in z.infolist())
        print(f"{b:<18} {size / MIB:>8.2f} {unzipped / MIB:>13.2f}")
        if size > args.budget_mib * MIB:
            over.append(f"{b}: {size / MIB:.2f} MiB")
    if over:
        print(f"package: over the {args.budget_mib:g} MiB budget: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
