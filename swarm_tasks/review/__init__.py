"""Deterministic code review: the analysis layer under the review swarm.

Used as the reviewers' tools when a model is configured, and as the reviewers themselves ("deterministic
analysis") when none is. :func:`review_locally` runs the whole pipeline serially, in process.
"""

from swarm_tasks.review.analyzers import ANALYZERS, Analyzer, analyzer_for, run_reviewer
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.dependencies import DependencyFile, DependencyGraph, ImportEdge, follow_imports
from swarm_tasks.review.enums import (
    Category,
    FileOrigin,
    FindingSource,
    ReviewerKind,
    ReviewReason,
    RiskLevel,
    ScanFlag,
    Severity,
    SkipReason,
    SubReviewerKind,
)
from swarm_tasks.review.findings import Finding, Location, Reporter, finding_id
from swarm_tasks.review.imports import ImportResolver, ImportTarget, UnresolvedImport
from swarm_tasks.review.inventory import Inventory, ThirdPartyRoots, build_inventory, describe_file
from swarm_tasks.review.languages import Language
from swarm_tasks.review.merge import merge_findings, same_issue
from swarm_tasks.review.pipeline import dependency_findings, review_locally, reviewer_agent_id
from swarm_tasks.review.report import AgentRole, AgentRun, Report, ReviewedFile, ReviewMode, Usage
from swarm_tasks.review.report_json import parse_json, render_json
from swarm_tasks.review.report_markdown import render_markdown
from swarm_tasks.review.report_sarif import build_sarif, render_sarif, sarif_schema
from swarm_tasks.review.scan import ImportRef, ScanResult, Signal, quick_scan, scan_text
from swarm_tasks.review.source import SkippedPath, SourceFile, read_source
from swarm_tasks.review.subreview_models import SubreviewOutcome
from swarm_tasks.review.subreview_rules import (
    SubreviewRequest,
    SubreviewRule,
    SubreviewRules,
    load_subreview_rules,
    plan_subreviews,
)
from swarm_tasks.review.subreviewers import run_subreviewer

__all__ = [
    "ANALYZERS", "AgentRole", "AgentRun", "Analyzer", "Category", "CodeIndex", "DependencyFile", "DependencyGraph",
    "FileOrigin", "Finding", "FindingSource", "ImportEdge", "ImportRef", "ImportResolver", "ImportTarget",
    "Inventory", "Language", "Location", "Report", "Reporter", "ReviewConfig", "ReviewMode", "ReviewReason",
    "ReviewedFile", "ReviewerKind", "RiskLevel", "ScanFlag", "ScanResult", "Severity", "Signal", "SkipReason",
    "SkippedPath", "SourceFile", "SubReviewerKind", "SubreviewOutcome", "SubreviewRequest", "SubreviewRule",
    "SubreviewRules", "ThirdPartyRoots", "UnresolvedImport", "Usage", "analyzer_for", "build_inventory",
    "build_sarif", "dependency_findings", "describe_file", "finding_id", "follow_imports", "load_subreview_rules",
    "merge_findings", "parse_json", "plan_subreviews", "quick_scan", "read_source", "render_json",
    "render_markdown", "render_sarif", "review_locally", "reviewer_agent_id", "run_reviewer", "run_subreviewer",
    "same_issue", "sarif_schema", "scan_text",
]
