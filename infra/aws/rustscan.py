"""What each Lambda binary of the Cargo workspace serves and reads, from its sources.

A light static reading, not a compiler: every `.rs` file under each workspace crate's `src/` is
read (so code can move between files and modules freely), `#[cfg(test)]` modules are left out,
and functions are linked by name:

- `Type::name(...)` calls the associated function `name` of `Type`;
- `name(...)` and `module::name(...)` call a free function `name` of the same package, or else
  of the packages it depends on (`llmtrack_x::...::name` picks that crate);
- `.name(...)` calls any method `name` of the packages in reach (an over-approximation);
- `routes!(a, m::b)` registers handlers, whose `#[utoipa::path(method, path = "...")]` is a route
  the router serves; `X().into_openapi()` only describes a router, so it is not followed.

From each binary's `main`, everything reachable is collected: the routes its handlers serve, and
the environment variables read on the way (`std::env::var("X")`, `var_os("X")`, and calls of
wrappers such as `config::required("X")`: functions that pass a parameter to `env::var`, or
constant arrays of names they read in a loop).
"""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass
class Fn:
    package: str
    owner: str | None  # the impl's self type, for methods and associated functions
    name: str
    file: Path
    body: str  # masked: comments blanked; string literals keep their letters (env var names)
    route: tuple[str, str] | None = None


@dataclass
class Package:
    name: str  # e.g. llmtrack-alerts
    ident: str  # e.g. llmtrack_alerts
    dir: Path
    deps: list[str] = field(default_factory=list)  # workspace package names
    bins: dict[str, Path] = field(default_factory=dict)  # binary name -> main file


def mask(text: str) -> str:
    """Comments become spaces; inside string literals braces, parentheses and quotes-in-strings are
    blanked but letters kept (env var names stay readable); char literals are blanked. Same length,
    so positions match the original."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j == -1 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end == -1 else end
            for k in range(i + len(m.group(0)), end):
                if text[k] in "{}()[];\"'":
                    out[k] = " "
            i = end + 1 + len(m.group(1))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    out[j] = " "
                    if j + 1 < n:
                        out[j + 1] = " "
                    j += 2
                    continue
                if text[j] in "{}()[];'":
                    out[j] = " "
                j += 1
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                for k in range(i, i + len(m.group(0))):
                    out[k] = " "
                i += len(m.group(0))
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


def matching(text: str, open_pos: int) -> int:
    """Index of the bracket closing the one at open_pos (masked text)."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    opener, closer = text[open_pos], pairs[text[open_pos]]
    depth = 0
    for i in range(open_pos, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    return len(text) - 1


def strip_test_modules(masked: str) -> str:
    """Blanks `#[cfg(test)]` items (test modules and test-only functions)."""
    out = masked
    for m in re.finditer(r"#\[cfg\(test\)\]", masked):
        brace = out.find("{", m.end())
        semi = out.find(";", m.end())
        if brace == -1 or (semi != -1 and semi < brace):
            continue
        end = matching(out, brace)
        out = out[: m.start()] + re.sub(r"[^\n]", " ", out[m.start(): end + 1]) + out[end + 1:]
    return out


def workspace(root: Path) -> dict[str, Package]:
    manifest = tomllib.loads((root / "Cargo.toml").read_text())
    packages: dict[str, Package] = {}
    for member in manifest["workspace"]["members"]:
        d = root / member
        cargo = tomllib.loads((d / "Cargo.toml").read_text())
        name = cargo["package"]["name"]
        pkg = Package(name=name, ident=name.replace("-", "_"), dir=d)
        for b in cargo.get("bin", []):
            pkg.bins[b["name"]] = d / b.get("path", f"src/bin/{b['name']}.rs")
        pkg.deps = list(cargo.get("dependencies", {}))
        packages[name] = pkg
    for pkg in packages.values():
        pkg.deps = [d for d in pkg.deps if d in packages]
    return packages


IMPL = re.compile(r"\bimpl\b")
FN = re.compile(r"\bfn\s+([A-Za-z_]\w*)")
ROUTE_ATTR = re.compile(r"#\[utoipa::path\(")


def impl_self_type(header: str) -> str | None:
    header = re.sub(r"<[^<>]*(<[^<>]*>[^<>]*)*>", "", header)  # generics
    header = header.split(" where ")[0]
    target = header.split(" for ")[-1] if " for " in header else header
    idents = re.findall(r"[A-Za-z_]\w*", target)
    idents = [i for i in idents if i not in ("impl", "dyn", "mut", "const", "unsafe")]
    return idents[-1] if idents else None


def parse_package(pkg: Package) -> list[Fn]:
    fns: list[Fn] = []
    for file in sorted((pkg.dir / "src").rglob("*.rs")):
        original = file.read_text()
        masked = strip_test_modules(mask(original))
        impls = []  # (start, end, type)
        for m in IMPL.finditer(masked):
            brace = masked.find("{", m.end())
            semi = masked.find(";", m.end())
            if brace == -1 or (semi != -1 and semi < brace):
                continue
            impls.append((brace, matching(masked, brace), impl_self_type(masked[m.end():brace])))
        routes = {}  # fn position -> route
        for m in ROUTE_ATTR.finditer(masked):
            close = matching(masked, m.end() - 1)
            args = original[m.end():close]
            method = args.split(",")[0].strip().upper()
            path = re.search(r'\bpath\s*=\s*"([^"]*)"', args)
            nxt = FN.search(masked, close)
            if path and nxt:
                routes[nxt.start()] = (method, path.group(1))
        for m in FN.finditer(masked):
            brace = masked.find("{", m.end())
            semi = masked.find(";", m.end())
            if brace == -1 or (semi != -1 and semi < brace):
                continue  # a declaration without a body
            end = matching(masked, brace)
            owners = [t for (s, e, t) in impls if s < m.start() < e]
            fns.append(
                Fn(
                    package=pkg.name,
                    owner=owners[-1] if owners else None,
                    name=m.group(1),
                    file=file,
                    body=masked[brace:end + 1],
                    route=routes.get(m.start()),
                )
            )
    return fns


CALL = re.compile(r"((?:[A-Za-z_]\w*::)*[A-Za-z_]\w*)\s*(?:::\s*<[^()]*?>\s*)?\(")
METHOD = re.compile(r"\.\s*([A-Za-z_]\w*)\s*(?:::\s*<[^()]*?>\s*)?\(")
MACRO_ROUTES = re.compile(r"\broutes!\s*\(")
STRING_ARG = re.compile(r'\(\s*"([^"]*)"')
KEYWORDS = {"if", "while", "match", "for", "return", "fn", "loop", "in", "as", "move", "async", "await", "let", "Some", "Ok", "Err", "Box", "Vec"}


class Code:
    def __init__(self, root: Path):
        self.packages = workspace(root)
        self.fns: list[Fn] = []
        for pkg in self.packages.values():
            self.fns.extend(parse_package(pkg))
        self.by_name: dict[str, list[int]] = defaultdict(list)
        for i, f in enumerate(self.fns):
            self.by_name[f.name].append(i)
        self.consts = self._consts()
        self.wrappers = self._env_wrappers()

    def closure(self, package: str) -> set[str]:
        seen, todo = set(), [package]
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo.extend(self.packages[p].deps)
        return seen

    def _consts(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for pkg in self.packages.values():
            for file in (pkg.dir / "src").rglob("*.rs"):
                text = mask(file.read_text())
                for m in re.finditer(r"\b(?:const|static)\s+([A-Z_][A-Z0-9_]*)\s*:[^=]*?=\s*&?\s*\[([^\]]*)\]", text):
                    names = re.findall(r'"([^"]*)"', m.group(2))
                    if names and all(ENV_NAME.match(n) for n in names):
                        out[m.group(1)] = names
        return out

    def _env_wrappers(self) -> set[str]:
        """Free functions that read the variable their caller names (`required(name)`)."""
        out = set()
        for f in self.fns:
            if f.owner is None and re.search(r"env::var(?:_os)?\s*\(\s*[a-z_]\w*\s*\)", f.body):
                out.add(f.name)
        return out

    def env_reads(self, f: Fn) -> set[str]:
        reads = set()
        for m in re.finditer(r"(?:env::var|env::var_os|\b(?:%s))\s*\(\s*\"([^\"]*)\"" % "|".join(map(re.escape, sorted(self.wrappers)) or ["$^"]), f.body):
            if ENV_NAME.match(m.group(1)):
                reads.add(m.group(1))
        if re.search(r"env::var(?:_os)?\s*\(\s*[a-z_]\w*\s*\)", f.body):
            for const, names in self.consts.items():
                if re.search(r"\b%s\b" % const, f.body):
                    reads.update(names)
        return reads

    def _resolve(self, caller: Fn, segs: list[str], scope: set[str]) -> list[int]:
        name = segs[-1]
        cands = [i for i in self.by_name.get(name, []) if self.fns[i].package in scope]
        if len(segs) >= 2 and segs[-2] == "Self":
            return [i for i in cands if self.fns[i].owner == caller.owner]
        if len(segs) >= 2 and segs[-2][:1].isupper():
            return [i for i in cands if self.fns[i].owner == segs[-2]]
        free = [i for i in cands if self.fns[i].owner is None]
        crate = next((p.name for p in self.packages.values() if p.ident == segs[0]), None) if len(segs) >= 2 else None
        if crate:
            return [i for i in free if self.fns[i].package == crate]
        own = [i for i in free if self.fns[i].package == caller.package]
        return own or free

    def reach(self, binary: str) -> tuple[set[tuple[str, str]], set[str], set[str]]:
        """(routes served, env vars read, packages in reach) from the binary's `main`."""
        pkg = next(p for p in self.packages.values() if binary in p.bins)
        main_file = pkg.bins[binary].resolve()
        scope = self.closure(pkg.name)
        start = [i for i, f in enumerate(self.fns) if f.name == "main" and f.file.resolve() == main_file]
        assert start, f"no main in {main_file}"
        seen, todo = set(start), list(start)
        routes, env = set(), set()
        while todo:
            f = self.fns[todo.pop()]
            if f.route:
                routes.add(f.route)
            env |= self.env_reads(f)
            targets: list[int] = []
            body = f.body
            for m in CALL.finditer(body):
                segs = [s.strip() for s in m.group(1).split("::")]
                if segs[-1] in KEYWORDS or (m.start() > 0 and body[m.start() - 1] == "."):
                    continue
                close = matching(body, m.end() - 1)
                if re.match(r"\s*\.\s*into_openapi\s*\(", body[close + 1:]):
                    continue  # a router only described, never served
                targets += self._resolve(f, segs, scope)
            for m in METHOD.finditer(body):
                targets += [i for i in self.by_name.get(m.group(1), []) if self.fns[i].owner and self.fns[i].package in scope]
            for m in MACRO_ROUTES.finditer(body):
                close = matching(body, m.end() - 1)
                for path in re.findall(r"(?:[A-Za-z_]\w*::)*[A-Za-z_]\w*", body[m.end():close]):
                    targets += self._resolve(f, path.split("::"), scope)
            # Functions passed by path as values (`get(folder::download)`, `service_fn(run)`).
            for m in re.finditer(r"[(,]\s*((?:[A-Za-z_]\w*::)+[a-z_]\w*)\s*[),]", body):
                targets += self._resolve(f, m.group(1).split("::"), scope)
            for t in targets:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return routes, env, scope
