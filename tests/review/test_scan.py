"""Quick scan: risk, flags with their lines, imports; never fails on bad input."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import RiskLevel, ScanFlag
from swarm_tasks.review.scan import ScanResult, quick_scan
from tests.review.helpers import source

PY_RISKY = '''"""Module."""
import os
import pickle
import subprocess as sp
from .db import query
from . import models


def run(cmd, data, cur):
    """Doc."""
    os.system("ls " + cmd)
    sp.run(cmd, shell=True)
    pickle.loads(data)
    cur.execute(f"SELECT * FROM t WHERE id = {cmd}")
    return eval(cmd)
'''


def scan(tmp_path: Path, rel: str, text: str | bytes, config: ReviewConfig | None = None) -> ScanResult:
    config = config or ReviewConfig()
    return quick_scan(tmp_path, source(tmp_path, rel, text, config), config)


def test_python_sinks_give_critical_risk_with_lines_and_imports(tmp_path: Path) -> None:
    result = scan(tmp_path, "risky.py", PY_RISKY)
    assert result.risk is RiskLevel.CRITICAL and result.flagged
    assert {ScanFlag.SHELL, ScanFlag.DESERIALIZATION, ScanFlag.SQL, ScanFlag.EVAL} <= set(result.flags)
    assert result.lines_for(ScanFlag.SHELL) == [11, 12]
    assert result.lines_for(ScanFlag.DESERIALIZATION) == [13]
    assert result.lines_for(ScanFlag.EVAL) == [15]
    assert 14 in result.lines_for(ScanFlag.SQL)
    imports = [(i.module, i.level, i.names, i.line) for i in result.imports]
    assert imports == [("os", 0, [], 2), ("pickle", 0, [], 3), ("subprocess", 0, [], 4), ("db", 1, ["query"], 5),
                       ("", 1, ["models"], 6)]
    assert ScanResult.decode(result.encode()) == result


def test_python_secrets_auth_crypto_complexity_and_docs(tmp_path: Path) -> None:
    text = '''import hashlib
import requests
API_KEY = "abcd1234efgh5678"
PLACEHOLDER_TOKEN = "changeme"
AWS = "AKIAABCDEFGHIJKLMNOP"


def login(user, password):
    return hashlib.md5(password.encode()).hexdigest()


def deep(x):
    if x:
        for a in x:
            while a:
                if a:
                    with a:
                        pass
'''
    result = scan(tmp_path, "auth_utils.py", text)
    assert result.lines_for(ScanFlag.SECRETS) == [3, 5]  # the placeholder is not a secret
    assert 8 in result.lines_for(ScanFlag.AUTH) and 1 in result.lines_for(ScanFlag.AUTH)
    assert 9 in result.lines_for(ScanFlag.CRYPTO)
    assert result.lines_for(ScanFlag.NETWORK) == [2]
    assert result.lines_for(ScanFlag.COMPLEX) == [12]
    assert result.lines_for(ScanFlag.UNDOCUMENTED) == [1, 8, 12]
    assert result.risk is RiskLevel.HIGH


def test_clean_file_is_low_and_not_flagged(tmp_path: Path) -> None:
    result = scan(tmp_path, "clean.py", '"""Clean."""\n\n\ndef add(a, b):\n    """Sum."""\n    return a + b\n')
    assert result.risk is RiskLevel.LOW and result.flags == [] and not result.flagged


def test_undocumented_only_is_flagged_by_default_but_not_with_threshold_only(tmp_path: Path) -> None:
    assert scan(tmp_path, "a.py", "def f():\n    return 1\n").flagged
    strict = ReviewConfig(flag_on_any_flag=False, risk_threshold=RiskLevel.HIGH)
    assert not scan(tmp_path, "b.py", "def f():\n    return 1\n", strict).flagged


def test_unparsable_python_is_flagged_not_raised(tmp_path: Path) -> None:
    result = scan(tmp_path, "bad.py", "def broken(:\n    pass\n")
    assert result.flags == [ScanFlag.UNPARSABLE] and result.risk is RiskLevel.MEDIUM and result.parse_error
    weird = scan(tmp_path, "weird.py", b"x = '\\d'\n\xff\xfe = 1\n")  # invalid escape + undecodable bytes
    assert ScanFlag.UNPARSABLE in weird.flags


def test_js_heuristics_and_imports(tmp_path: Path) -> None:
    text = '''import fs from "fs";
import { a } from './lib/a';
const cp = require("child_process");
// eval(commented) is ignored
export function run(name) {
  cp.exec(`ls ${name}`);
  document.getElementById("x").innerHTML = name;
  const q = "SELECT * FROM users WHERE id = " + name;
  return eval(name);
}
const apiKey = "sk_test_abcdefghijklmnop";
'''
    result = scan(tmp_path, "web/app.js", text)
    assert result.risk is RiskLevel.CRITICAL
    assert result.lines_for(ScanFlag.EVAL) == [9]
    assert 6 in result.lines_for(ScanFlag.SHELL)
    assert result.lines_for(ScanFlag.XSS) == [7]
    assert result.lines_for(ScanFlag.SQL) == [8]
    assert result.lines_for(ScanFlag.SECRETS) == [11]
    assert result.lines_for(ScanFlag.UNDOCUMENTED) == [5]
    assert [(i.module, i.line) for i in result.imports] == [("fs", 1), ("./lib/a", 2), ("child_process", 3)]


def test_typescript_deep_nesting(tmp_path: Path) -> None:
    text = "export function f(a: number): number {\n" + "  if (a) {\n" * 6 + "  }\n" * 6 + "  return a;\n}\n"
    result = scan(tmp_path, "f.ts", text)
    assert result.lines_for(ScanFlag.COMPLEX) == [1]
