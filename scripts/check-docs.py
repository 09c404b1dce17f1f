#!/usr/bin/env python3
"""List every public or open Swift declaration under Sources/ that has no doc comment.

A declaration is documented when the line directly above it (skipping only lines that hold
nothing but attributes, such as `@discardableResult` or `@inlinable`) is part of a `///`
comment or a `/** ... */` comment. Counted as public:

- declarations marked `public` or `open` (types, funcs, inits, vars, lets, subscripts,
  typealiases) at file level, in public types and in extensions of types that are not
  declared non-public in Sources/;
- members without an access modifier of a `public extension`;
- requirements of a public protocol (they take the protocol's access);
- cases of a public enum.

Declarations inside function bodies, closures and accessors are never public and are skipped;
so are members of types and extensions that are internal, fileprivate or private.

Usage: scripts/check-docs.py [--summary] [ROOT]   (ROOT defaults to the package root)
Prints `path:line: undocumented public KIND NAME` for each, then a count per target, and
exits 1 if there is any (0 if none). Python 3 standard library only.
"""

import os
import re
import sys
from collections import Counter

ACCESS = {"public", "open", "package", "internal", "fileprivate", "private"}
MODIFIERS = ACCESS | {
    "static", "final", "override", "convenience", "required", "mutating", "nonmutating",
    "lazy", "weak", "unowned", "indirect", "dynamic", "optional", "nonisolated", "prefix",
    "postfix", "infix", "consuming", "borrowing", "distributed", "isolated", "__consuming",
}
TYPE_KEYWORDS = {"class", "struct", "enum", "protocol", "actor"}
MEMBER_KEYWORDS = {"func", "init", "var", "let", "subscript", "typealias", "associatedtype", "case"}
# A setter's access (`private(set)`: the declaration's own access is the other modifier) and a
# modifier's argument (`nonisolated(unsafe)`, `unowned(safe)`).
SETTER_ACCESS = re.compile(r"\b(private|fileprivate|internal|package|public|open)\s*\(\s*set\s*\)")
MODIFIER_ARGUMENT = re.compile(r"\b(nonisolated|unowned)\s*\(\s*\w+\s*\)")
ATTRIBUTE = re.compile(r"@[A-Za-z_][\w.]*(<[^>]*>)?")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|`[^`]*`|\S")


def mask(text):
    """Returns (code, doc_lines): `code` is `text` with comments and string-literal contents
    replaced by spaces (line breaks kept, quotes kept); doc_lines is the set of 0-based line
    numbers that hold part of a `///` or `/** */` comment."""
    out = []
    doc_lines = set()
    i, n, line = 0, len(text), 0
    # Stack of lexical states: ("code", paren_depth) for code and string interpolations,
    # ("string", hashes, multiline) for string literals.
    stack = [("code", 0)]

    def emit(s):
        nonlocal line
        out.append(s)
        line += s.count("\n")

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        state = stack[-1]
        c = text[i]
        if state[0] == "code":
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                if text.startswith("///", i) and not text.startswith("////", i):
                    doc_lines.add(line)
                emit(blank(text[i:j]))
                i = j
            elif text.startswith("/*", i):
                is_doc = text.startswith("/**", i) and not text.startswith("/**/", i)
                depth, j = 1, i + 2
                while j < n and depth:
                    if text.startswith("/*", j):
                        depth, j = depth + 1, j + 2
                    elif text.startswith("*/", j):
                        depth, j = depth - 1, j + 2
                    else:
                        j += 1
                if is_doc:
                    doc_lines.update(range(line, line + text.count("\n", i, j) + 1))
                emit(blank(text[i:j]))
                i = j
            else:
                m = re.match(r'(#*)("""|")', text[i:i + 64])
                if m and (m.group(1) == "" or c == "#"):
                    hashes = len(m.group(1))
                    emit(m.group(0))
                    i += len(m.group(0))
                    stack.append(("string", hashes, m.group(2) == '"""'))
                elif c == "(":
                    stack[-1] = ("code", state[1] + 1)
                    emit(c)
                    i += 1
                elif c == ")":
                    if state[1] == 0 and len(stack) > 1:  # end of an interpolation
                        stack.pop()
                        emit(" ")
                    else:
                        stack[-1] = ("code", state[1] - 1)
                        emit(c)
                    i += 1
                else:
                    emit(c)
                    i += 1
        else:
            _, hashes, multiline = state
            close = ('"""' if multiline else '"') + "#" * hashes
            escape = "\\" + "#" * hashes
            if text.startswith(close, i):
                stack.pop()
                emit(close)
                i += len(close)
            elif text.startswith(escape + "(", i):
                emit(" " * (len(escape) + 1))
                i += len(escape) + 1
                stack.append(("code", 0))
            elif text.startswith(escape, i):
                emit(blank(text[i:i + len(escape) + 1]))
                i += len(escape) + 1
            elif c == "\n" and not multiline:  # unterminated: give up on this literal
                stack.pop()
                emit(c)
                i += 1
            else:
                emit(blank(c))
                i += 1
    return "".join(out), doc_lines


def parse_declaration(statement):
    """(access, keyword, name) of the declaration `statement` starts with, or None."""
    s = MODIFIER_ARGUMENT.sub(lambda m: m.group(1), SETTER_ACCESS.sub(" ", statement))
    while True:
        m = ATTRIBUTE.match(s)
        if not m:
            break
        s = s[m.end():].lstrip()
        if s.startswith("("):  # the attribute's arguments
            depth, j = 0, 0
            for j, ch in enumerate(s):
                depth += (ch == "(") - (ch == ")")
                if depth == 0:
                    break
            s = s[j + 1:].lstrip()
    words = WORD.findall(s)
    access = None
    k = 0
    while k < len(words):
        w = words[k]
        if w in ACCESS:
            access = w
        elif w == "class" and k + 1 < len(words) and words[k + 1] in MEMBER_KEYWORDS | MODIFIERS:
            pass  # `class func`, `class var`: a modifier here
        elif w not in MODIFIERS:
            break
        k += 1
    if k >= len(words):
        return None
    keyword = words[k]
    if keyword not in TYPE_KEYWORDS | MEMBER_KEYWORDS | {"extension"}:
        return None
    name = ""
    for w in words[k + 1:]:
        if w not in {"?", "!", "`"}:
            name = w
            break
    if keyword == "extension":
        m = re.match(r"\s*([\w.]+)", s.split("extension", 1)[1])
        name = m.group(1) if m else ""
    if keyword in {"init", "subscript"}:
        name = ""
    return access, keyword, name


def swift_files(root):
    for base, dirs, files in os.walk(os.path.join(root, "Sources")):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".swift"):
                yield os.path.join(base, f)


def scan(path, code, doc_lines, type_access, collect_types):
    """Walks one file. With `collect_types`, records each named type's access in
    `type_access`; otherwise returns the undocumented public declarations."""
    lines = code.split("\n")
    findings = []
    # Context stack entries: dict(kind=file|type|code, public=..., implicit=..., enum=...).
    stack = [{"kind": "file", "public": True, "implicit": False, "enum": False, "protocol": False}]
    pending = None  # the context the next "{" opens
    for number, text in enumerate(lines):
        stripped = text.strip()
        ctx = stack[-1]
        if stripped and ctx["kind"] != "code":
            decl = parse_declaration(stripped)
            if decl:
                access, keyword, name = decl
                if keyword in TYPE_KEYWORDS:
                    if collect_types:
                        explicit = access in {"public", "open"}
                        type_access[name] = type_access.get(name, False) or explicit
                if keyword == "extension":
                    # An extension without a modifier can hold public members unless its
                    # type is declared non-public in Sources/ (None: a type from elsewhere).
                    known = type_access.get(name.split(".")[-1])
                    is_public = access in {"public", "open"} or (access is None and known is not False)
                    pending = {"kind": "type", "public": ctx["public"] and is_public,
                               "implicit": access in {"public", "open"}, "enum": False, "protocol": False}
                else:
                    if keyword == "case":
                        visible = ctx["kind"] == "type" and ctx["enum"] and ctx["public"]
                    elif ctx["protocol"]:
                        visible = ctx["public"]
                    elif access in {"public", "open"}:
                        visible = ctx["public"]
                    elif access is None:
                        visible = ctx["public"] and ctx["implicit"]
                    else:
                        visible = False
                    if visible and not collect_types:
                        k = number - 1
                        while k >= 0 and lines[k].strip().startswith("@") and k not in doc_lines:
                            k -= 1
                        if not (k >= 0 and k in doc_lines and lines[k].strip() == ""):
                            rel = os.path.relpath(path)
                            findings.append((rel, number + 1, keyword, name))
                    if keyword in TYPE_KEYWORDS:
                        pending = {"kind": "type", "public": visible, "implicit": keyword == "protocol" and visible,
                                   "enum": keyword == "enum", "protocol": keyword == "protocol"}
                    else:
                        pending = {"kind": "code"}
        for ch in text:
            if ch == "{":
                stack.append(pending if pending else {"kind": "code"})
                pending = None
            elif ch == "}":
                if len(stack) > 1:
                    stack.pop()
                pending = None
            elif ch == ";":
                pending = None
    return findings


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    root = args[0] if args else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    files = []
    for path in swift_files("."):
        with open(path, encoding="utf-8") as f:
            code, doc_lines = mask(f.read())
        files.append((os.path.relpath(path), code, doc_lines))
    type_access = {}
    for path, code, doc_lines in files:
        scan(path, code, doc_lines, type_access, collect_types=True)
    findings = []
    for path, code, doc_lines in files:
        findings += scan(path, code, doc_lines, type_access, collect_types=False)
    if "--summary" not in argv:
        for path, line, keyword, name in findings:
            print(f"{path}:{line}: undocumented public {keyword} {name}".rstrip())
    per_target = Counter(path.split(os.sep)[1] for path, *_ in findings)
    for target in sorted(per_target):
        print(f"{target}: {per_target[target]}", file=sys.stderr)
    print(f"total: {len(findings)} undocumented public declarations", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
