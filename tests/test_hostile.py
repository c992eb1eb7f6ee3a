"""Hostile specs: nothing in a spec runs as code, and what seqgen generates from one still works.

Each case either fails with a SeqgenError or generates a module and a test file that compile,
carry the spec's strings only as string literals, import, and pass their own tests. No case may
create the PWNED marker its payload asks for.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import subprocess
import sys
import tokenize
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT

from seqgen.api import generate, options_for
from seqgen.errors import SeqgenError
from seqgen.project.write import write_files

# one worker runs the module fixture `outcomes` (all cases, one pytest subprocess) under xdist
pytestmark = pytest.mark.xdist_group("hostile")

PAYLOAD = "__import__('os').system('touch PWNED')"
MARKER = "PWNED"


@dataclass(frozen=True)
class Case:
    """A hostile spec, the file name it is saved under, and what seqgen must do with it."""

    text: str
    expect: str  # "error" (a SeqgenError) | "generated"
    file_name: str = ""  # default: c<index>.seq
    strings: tuple[str, ...] = ()  # spec strings that must come out as these exact literals
    absent: tuple[str, ...] = ()  # text that must not appear anywhere in the generated files


# Layers with strings use `identity` (it takes any arguments); a `linear` gives each model a
# parameter, so its generated backward test has something to check.
CASES: dict[str, Case] = {
    # -- code in parameter defaults
    "code in a default, reserved name": Case(f'model M(x="{PAYLOAD}")\ninput 4\nlinear 2', "error"),
    "code in a string default": Case(
        f'model M(cmd="{PAYLOAD}")\ninput 4\nlinear 2', "generated", strings=(PAYLOAD,)
    ),
    "default that closes its quote": Case(
        "model M(cmd='\\'); __import__(\"os\").system(\"touch PWNED\"); (\\'')\ninput 4\nlinear 2",
        "generated",
        strings=('\'); __import__("os").system("touch PWNED"); (\'',),
    ),
    "code as a default value": Case("model M(cmd=__import__)\ninput 4\nlinear 2", "error"),
    # -- code in layer arguments
    "code in a kwarg value": Case(
        f'input 4\nlinear 4\nidentity cmd="{PAYLOAD}"', "generated", strings=(PAYLOAD,)
    ),
    "code as a kwarg name": Case("input 4\nlinear 4\nidentity __import__=1", "error"),
    "code as a bare value": Case("input 4\nlinear __import__", "error"),
    "code in a tuple": Case("input 4\nlinear 4\nidentity (__import__, 'os')", "error"),
    "f-string prefix": Case("input 4\nlinear 4\nidentity f\"{__import__('os')}\"", "error"),
    "code in positional strings": Case(
        "input 4\nlinear 4\nidentity \"'); __import__('os').system('touch PWNED') #\" "
        '\'"""; import os; os.system("touch PWNED") #\'',
        "generated",
        strings=(
            "'); __import__('os').system('touch PWNED') #",
            '"""; import os; os.system("touch PWNED") #',
        ),
    ),
    # -- Jinja syntax, which must reach the templates as data, never as template source
    "jinja in comments": Case(
        "# {{ 7*7 }} {% for i in range(3) %}x{% endfor %} {# c #}\ninput 4  # {{ config }}\n"
        "linear 2  # {% raw %}",
        "generated",
        absent=("7*7", "{%", "{#", "config", "raw"),
    ),
    "jinja in strings": Case(
        "model M(s=\"{{ 7*7 }}\", t='{% if true %}x{% endif %}')\ninput 4\n"
        'linear 4\nidentity "{{ self.__init__.__globals__ }}" t="{#"',
        "generated",
        strings=("{{ 7*7 }}", "{% if true %}x{% endif %}", "{{ self.__init__.__globals__ }}", "{#"),
    ),
    "jinja in the file name": Case("input 4\nlinear 2", "generated", file_name="{{7*7}}.seq"),
    # -- quotes and backslashes
    "triple quotes in comments": Case(
        "# \"\"\" ''' \\\ninput 4  # \"\"\"\nlinear 2  # '''\\", "generated", absent=("'''", "\\")
    ),
    "triple quotes and backslashes in strings": Case(
        "input 4\nlinear 4\n"
        'identity \'"""\' "\'\'\'" "\\\\" \'ends in a backslash\\\\\' "\\"\\"\\""',
        "generated",
        strings=('"""', "'''", "\\", "ends in a backslash\\", '"""'),
    ),
    "backslash ending a layer line": Case("input 4\nlinear 2 \\\nrelu", "error"),
    "unterminated string": Case('input 4\nlinear 4\nidentity "abc\\"', "error"),
    # -- newlines and other control characters, via escapes or raw
    "newline escapes in strings": Case(
        'model M(s="line1\\nline2\\r\\n\\t\\0")\ninput 4\n'
        "linear 4\nidentity \"a\\nimport os\\nos.system('touch PWNED')\\n\"",
        "generated",
        strings=("line1\nline2\\r\n\t\0", "a\nimport os\nos.system('touch PWNED')\n"),
    ),
    "unknown escapes stay backslashes": Case(
        'input 4\nlinear 4\nidentity "\\x41\\u0041\\N{BULLET}"',
        "generated",
        strings=("\\x41\\u0041\\N{BULLET}",),
    ),
    "line separator inside a string": Case('input 4\nlinear 4\nidentity "a\u2028b"', "error"),
    "bidi override and NUL in strings": Case(
        'input 4\nlinear 4\nidentity "\u202e#" \'a\x00b\' "\ufeff"',
        "generated",
        strings=("\u202e#", "a\x00b", "\ufeff"),
    ),
    "a long string": Case(
        'input 4\nlinear 4\nidentity "' + "A" * 20000 + '"', "generated", strings=("A" * 20000,)
    ),
    # -- dunder names
    "dunder class name": Case("model __class__\ninput 4\nlinear 2", "error"),
    "dunder parameter": Case("model M(__class__=1)\ninput 4\nlinear 2", "error"),
    "dunder named dim": Case("input (__len__=3,)\nlinear 2", "error"),
    "dunder kwarg on identity": Case("input 4\nlinear 4\nidentity __class__=1", "error"),
    "dunder layer name": Case("input 4\n__class__", "error"),
    "dunder kwarg on a fixed signature": Case("input 4\nlinear 2 __init__=1", "error"),
    # -- keywords and reserved names as names
    "keyword class name": Case("model class\ninput 4\nlinear 2", "error"),
    "soft keyword class name": Case("model match\ninput 4\nlinear 2", "error"),
    "keyword parameter": Case("model M(lambda=1)\ninput 4\nlinear 2", "error"),
    "keyword kwarg on identity": Case("input 4\nlinear 4\nidentity import=1", "error"),
    "True as a kwarg name": Case("input 4\nlinear 4\nidentity True=1", "error"),
    "keyword as a layer": Case("input 4\nimport os", "error"),
    "reserved parameter": Case("model M(self=1)\ninput 4\nlinear 2", "error"),
    "reserved class name": Case("model torch\ninput 4\nlinear 2", "error"),
    "reserved named dim": Case("input (N=3,)\nlinear 2", "error"),
    # -- names the generated code itself uses (builtins, helpers of the test file) are reserved
    "builtin tuple as class name": Case("model tuple\ninput 4\nlinear 2", "error"),
    "builtin sum as class name": Case("model sum\ninput 4\nlinear 2", "error"),
    "ValueError as class name": Case("model ValueError\ninput (3, L=16)\nconv1d 4 3", "error"),
    "ValueError as named dim": Case("input (3, ValueError=16)\nconv1d 4 3", "error"),
    "sum as named dim": Case("input (3, sum=16)\nconv1d 4 3", "error"),
    "test helper as named dim": Case("input (3, input_shape=16)\nconv1d 4 3", "error"),
    # -- spec file names
    "quotes in the file name": Case(
        "input 4\nlinear 2", "generated", file_name="my \"quoted\" 'model'.seq"
    ),
    "spaces in the file name": Case(
        "input 4\nlinear 2", "generated", file_name="spaces in name.seq"
    ),
    "triple quote and backslash in the file name": Case(
        "input 4\nlinear 2", "generated", file_name='a"""b\\.seq'
    ),
    "newline in the file name": Case(
        "input 4\nlinear 2", "generated", file_name="new\nline # x.seq"
    ),
    "code in the file name": Case(
        "input 4\nlinear 2", "generated", file_name="'; __import__('os') #.seq"
    ),
    "__init__ as the file name": Case("input 4\nlinear 2", "generated", file_name="__init__.seq"),
    "a stdlib module's name as the file name": Case(
        "input 4\nlinear 2", "generated", file_name="os.seq"
    ),
}

# Names the generated code may use besides the spec's own: Python's, and the templates'.
_BUILTINS = set(dir(builtins))
_TEMPLATE_NAMES = set(
    re.findall(
        r"[A-Za-z_]\w*",
        "".join(
            p.read_text(encoding="utf-8") for p in sorted((ROOT / "templates").glob("*.jinja"))
        ),
    )
)
_SPEC_WORDS = ("__import__", "system", "PWNED", "{{", "{%", "{#", "7*7", "__globals__", "config")


@dataclass
class Outcome:
    """What happened to one case: its error, or its files and how its generated tests did."""

    directory: Path
    error: SeqgenError | None = None
    texts: list[str] = field(default_factory=list)
    class_name: str = ""
    names: set[str] = field(default_factory=set)
    passed: int = 0
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Generate every case under one tmp dir, then run all their generated tests in one pytest."""
    base = tmp_path_factory.mktemp("hostile")
    (base / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    results: dict[str, Outcome] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)  # a payload that ran would drop its marker here
        for index, (case_id, case) in enumerate(CASES.items()):
            directory = base / f"c{index}"
            directory.mkdir()
            out = results[case_id] = Outcome(directory)
            spec_path = directory / (case.file_name or f"c{index}.seq")
            spec_path.write_text(case.text, encoding="utf-8")
            try:
                result = generate(
                    str(spec_path), options_for(str(spec_path), out_dir=str(directory))
                )
            except SeqgenError as e:
                out.error = e
                continue
            write_files(list(result.files))
            out.texts = [f.text for f in result.files]
            spec = result.traced.spec
            out.class_name = spec.class_name
            out.names = {
                spec.class_name,
                *(p.name for p in spec.params),
                Path(result.files[0].path).stem,
            }
            for name in result.traced.dim_params:  # the test file's per-dim tests
                out.names |= {f"test_{name}_sizes", f"test_{name}_below_minimum_is_refused"}
            for layer in result.traced.layers:  # nn.<Class>(..., <keyword>=...)
                out.names |= {layer.class_name, *(k for k, _ in layer.call_kwargs)}
        tests = sorted(str(p.relative_to(base)) for p in base.glob("c*/test_*.py"))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--continue-on-collection-errors",
                "--junitxml=report.xml",
                "--rootdir",
                str(base),
                "-c",
                str(base / "pytest.ini"),
                *tests,
            ],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=600,
        )
    report = base / "report.xml"
    assert report.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    for case_out in ET.parse(report).iter("testcase"):
        where = case_out.get("classname") or case_out.get("name") or ""
        match = re.match(r"c(\d+)\.", where)
        assert match is not None, f"a test outside the cases: {where}"
        out = results[list(CASES)[int(match.group(1))]]
        failed = [el for el in case_out if el.tag in ("failure", "error")]
        if failed:
            detail = (failed[0].text or failed[0].get("message") or "").strip()
            out.problems.append(f"{case_out.get('name')}: {detail[-600:]}")
        elif not any(el.tag == "skipped" for el in case_out):
            out.passed += 1
    return results


def _code_tokens(text: str) -> list[tokenize.TokenInfo]:
    """Tokens of generated source that are code: not strings, comments or layout."""
    skip = {
        tokenize.STRING,
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
    }
    return [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in skip]


def _check_generated(case: Case, out: Outcome) -> None:
    for text in out.texts:
        tree = ast.parse(text)  # compiles
        for tok in _code_tokens(text):
            if tok.type == tokenize.NAME and tok.string in out.names:
                continue  # an identifier seqgen checked (class, parameter, module, torch names)
            assert not any(w in tok.string for w in _SPEC_WORDS), f"spec text as code: {tok}"
            if tok.type == tokenize.NAME:
                assert (
                    keyword.iskeyword(tok.string)
                    or tok.string in _BUILTINS
                    or tok.string in _TEMPLATE_NAMES
                ), f"unexpected name in generated code: {tok.string!r}"
        for ch in text:  # no raw control, bidi or line-separator characters: repr() escapes them
            assert ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"), repr(ch)
        header = text.split('"""', 1)[0]
        assert all(line.startswith("#") for line in header.splitlines() if line), header
        for absent in case.absent:
            assert absent not in text, f"{absent!r} from the spec reached the generated code"
        if text is out.texts[0]:
            literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
            for s in case.strings:
                assert s in literals, f"{s!r} did not come out as that exact string literal"


@pytest.mark.parametrize("case_id", list(CASES))
def test_hostile_spec(case_id: str, outcomes: dict[str, Outcome]) -> None:
    case, out = CASES[case_id], outcomes[case_id]
    for place in (out.directory, out.directory.parent, Path.cwd()):
        assert not (place / MARKER).exists(), f"a payload ran: {place / MARKER}"
    if case.expect == "error":
        assert out.error is not None, "expected a SeqgenError, but seqgen generated code"
        assert out.error.location is not None, out.error.render()
        out.error.render()
        return
    assert out.error is None, out.error.render()
    _check_generated(case, out)
    assert not out.problems, "\n".join(out.problems)
    assert out.passed >= 4, f"only {out.passed} generated tests passed"
