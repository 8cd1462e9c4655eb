"""Triage before the scans: rank files by risk, batch the trivial ones, and split the agent budget.

A review may start at most ``max_agents`` agents. Without a plan, a flood of trivial files (20,000
one-liners) spends that budget on scans and on reviewers of files that do not matter, and the one
file that does is reached last or never. So the inventory plans its scans:

* every file gets a cheap pre-rank from its path and the head of its text (shell, eval, pickle,
  SQL, secrets, auth, network...); scans start in that order, so risky files run first;
* each file that gets its own scan is reserved the agents it will need (its scan, its four
  reviewers, one more for a sub-reviewer or import scan when it shows a risk signal), riskiest
  first; the riskiest file gets its scan whatever the budget;
* trivial files (tiny, no signal at all) come last, scanned in batches of :data:`BATCH_FILES` by one
  program agent each, when there are enough of them to matter (:data:`BATCH_MIN_FILES`);
* files the budget cannot cover, lowest ranked first, are left out and named as such;
* what is left is the batches' allowance for reviewers of trivial files they flag, split between the
  batches when they start (see :func:`swarm_tasks.review.swarm.allowance_shares`): each spends its own
  share in path order, so the same files get reviewers every run whichever batch runs first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.enums import ReviewerKind
from swarm_tasks.review.source import SourceFile, read_bytes_confined

TRIVIAL_MAX_BYTES = 512
BATCH_FILES = 100
GROUP_FILES = 250  # files per agent of a review without models (see plan_groups)
# and at least this many groups (of fewer files) where there are files enough: work for more than one worker.
# Few groups, since they help each other: more threads of analyzers in one worker only take turns at its GIL.
MIN_GROUPS = 4
BATCH_MIN_FILES = 50  # fewer trivial files than this are scanned one by one: batching would not pay
HEAD_BYTES = 16_384
PER_FILE = 1 + len(ReviewerKind)  # its scan and its reviewers
PER_RISKY_FILE = PER_FILE + 1  # and a sub-reviewer or an import scan

_CONTENT = [(re.compile(p, re.IGNORECASE), w) for p, w in (
    (r"\bos\.(system|popen|exec\w*|spawn\w*)\s*\(|subprocess\.|shell\s*=\s*True|child_process|\bexecSync\b", 8),
    (r"(?<![\w.])(eval|exec)\s*\(|new\s+Function\s*\(|\bcompile\s*\(", 8),
    (r"\b(pickle|cPickle|dill|marshal|shelve|jsonpickle)\b|yaml\.(unsafe_)?load\b", 6),
    (r"\b(select\s.+\bfrom|insert\s+into|update\s+\w+\s+set|delete\s+from)\b|\.execute\s*\(|\.raw\s*\(", 5),
    (r"passw(or)?d|secret|api_?key|private_?key|token|credential", 4),
    (r"innerHTML|dangerouslySetInnerHTML|document\.write|render_template_string|mark_safe|\|\s*safe\b", 5),
    (r"\brequest\.(args|form|json|files|cookies|headers|get_json|GET|POST|body|query)|\binput\s*\(|sys\.argv", 4),
    (r"\b(requests|httpx|urllib|aiohttp|socket|fetch)\b", 2),
    (r"\b(hashlib|hmac|jwt|crypto|ssl|random)\b", 2),
    (r"\b(open|unlink|rmtree|chmod|os\.remove)\s*\(", 1),
)]
_PATH_UP = re.compile(r"(auth|login|logout|session|passw|token|secret|crypt|admin|permission|payment|billing|"
                      r"upload|api|view|route|handler|controller|server|db|sql|query|model|config|settings)",
                      re.IGNORECASE)
_PATH_DOWN = re.compile(r"(^|/)(tests?|spec|docs?|examples?|samples?|fixtures?|migrations?)(/|$)|(^|/)test_|"
                        r"_test\.|\.spec\.|\.test\.", re.IGNORECASE)


def pre_rank(root: Path, file: SourceFile) -> int:
    """A cheap risk score from the file's path and the head of its text (0: no signal at all)."""
    score = 0
    try:
        head = read_bytes_confined(root, file, HEAD_BYTES).decode("utf-8", "replace")
    except ReviewError:
        head = ""
    for pattern, weight in _CONTENT:
        if pattern.search(head):
            score += weight
    if _PATH_UP.search(file.path):
        score += 2
    if score and _PATH_DOWN.search(file.path):
        score = max(1, score // 2)  # tests and examples matter less, but a signal stays a signal
    return score


def trivial(file: SourceFile, score: int) -> bool:
    return score == 0 and file.size <= TRIVIAL_MAX_BYTES


@dataclass
class ScanPlan:
    """Which files get their own scan (risk order), which are scanned in batches, which are left out."""

    individual: list[SourceFile] = field(default_factory=list)
    batches: list[list[SourceFile]] = field(default_factory=list)
    left_out: list[SourceFile] = field(default_factory=list)
    budget: int = 0  # agents the review could still start when it planned
    reserved: int = 0  # of which reserved for the individually scanned files and the batches
    trivial_allowance: int = 0  # of which the batches may spend on reviewers of trivial files they flag

    @property
    def batched(self) -> int:
        return sum(len(b) for b in self.batches)


def plan_scans(root: Path, files: list[SourceFile], budget: int) -> ScanPlan:
    """Rank ``files``, batch the trivial ones, and fit the rest into ``budget`` agents (see the module doc)."""
    scored = sorted(((pre_rank(root, f), f) for f in files), key=lambda sf: (-sf[0], sf[1].path))
    light = [f for s, f in scored if trivial(f, s)]
    if len(light) < BATCH_MIN_FILES:
        light = []
    light_paths = {f.path for f in light}
    ranked = [(s, f) for s, f in scored if f.path not in light_paths]
    batches = [light[i:i + BATCH_FILES] for i in range(0, len(light), BATCH_FILES)]
    plan = ScanPlan(budget=max(0, budget))
    room = plan.budget
    for score, file in ranked:  # the files that may matter first, riskiest first
        cost = PER_RISKY_FILE if score else PER_FILE
        if cost <= room or (not plan.individual and room > 0):  # the riskiest file gets a scan whatever it costs
            plan.individual.append(file)
            room -= min(cost, room)
        else:
            plan.left_out.append(file)
    plan.batches = batches[:room]  # then the trivial files, one agent per batch
    plan.left_out += [f for batch in batches[room:] for f in batch]
    room -= len(plan.batches)
    plan.trivial_allowance = room if plan.batches else 0
    plan.reserved = plan.budget - room
    return plan


@dataclass
class GroupPlan:
    """A review without models: every file in a group, each group reviewed whole inside one agent."""

    groups: list[list[SourceFile]] = field(default_factory=list)
    budget: int = 0


def plan_groups(files: list[SourceFile], budget: int) -> GroupPlan:
    """``files`` in groups of about :data:`GROUP_FILES`, no more groups than ``budget`` agents (bigger
    groups instead: without models a file costs an agent nothing, so no file is left out while one agent
    can be started). A group's file is scanned, reviewed by the four analyzers, its imports followed and
    its findings sub-reviewed, all inside the group's agent. Files are dealt round the groups largest
    first, so the groups' work is even (the size is known without reading the file)."""
    plan = GroupPlan(budget=max(0, budget))
    if not files or plan.budget == 0:
        return plan
    count = min(plan.budget, max(-(-len(files) // GROUP_FILES), min(len(files), MIN_GROUPS)))
    plan.groups = deal(files, count)
    return plan


def deal(files: list[SourceFile], count: int) -> list[list[SourceFile]]:
    """``files`` dealt round ``count`` groups, largest first (every group agent can deal them again, the
    same way, to know the others' files)."""
    ranked = sorted(files, key=lambda f: (-f.size, f.path))
    return [ranked[n::count] for n in range(count)]
