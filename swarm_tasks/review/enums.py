"""The closed vocabularies of a review: severities, categories, risk levels, flags, reviewer kinds."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """The one severity scale every analyzer and model finding is mapped onto."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """4 for critical down to 0 for info: compare with this, never with the string."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0}


class Category(StrEnum):
    """What a finding is about; also the kind of reviewer that looks for it."""

    SECURITY = "security"
    QUALITY = "quality"
    COMPLEXITY = "complexity"
    DOCUMENTATION = "documentation"
    DEPENDENCY = "dependency"


class ReviewerKind(StrEnum):
    """The four specialist reviewers every flagged file gets."""

    SECURITY = "security"
    QUALITY = "quality"
    COMPLEXITY = "complexity"
    DOCUMENTATION = "documentation"


class SubReviewerKind(StrEnum):
    """Deeper reviewers spawned by high and critical findings (see subreview_rules.json)."""

    TAINT_TRACE = "taint-trace"
    SECRET_EXPOSURE = "secret-exposure"  # noqa: S105 - a reviewer name, not a secret
    AUTH_FLOW = "auth-flow"
    DESERIALIZATION_SOURCE = "deserialization-source"


class FindingSource(StrEnum):
    """Whether a finding came from a deterministic analyzer or from a model."""

    ANALYZER = "analyzer"
    MODEL = "model"


class RiskLevel(StrEnum):
    """The quick scan's verdict on a file."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for critical."""
        return _RISK_RANK[self]


_RISK_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2, RiskLevel.CRITICAL: 3}


class ScanFlag(StrEnum):
    """Cheap signals the quick scan raises on a file."""

    SQL = "sql"
    SHELL = "shell"
    DESERIALIZATION = "deserialization"
    EVAL = "eval"
    SECRETS = "secrets"
    CRYPTO = "crypto"
    NETWORK = "network"
    AUTH = "auth"
    XSS = "xss"
    COMPLEX = "complex"
    UNDOCUMENTED = "undocumented"
    UNPARSABLE = "unparsable"


class SkipReason(StrEnum):
    """Why the inventory left a path out."""

    BINARY = "binary"
    TOO_LARGE = "too-large"
    VENDORED = "vendored"
    GENERATED = "generated"
    MINIFIED = "minified"
    IGNORED = "ignored"
    UNREADABLE = "unreadable"
    NOT_SOURCE = "not-source"
    SYMLINK = "symlink"
    TOO_DEEP = "too-deep"  # a directory nested past max_dir_depth
    OUTSIDE = "outside-root"  # an import or a path that climbs out of the repository (``..``, absolute)


class FileOrigin(StrEnum):
    """Where a reviewed file lives: the repository itself or an installed third-party package."""

    REPOSITORY = "repository"
    THIRD_PARTY = "third-party"


class ReviewReason(StrEnum):
    """Why a file was given reviewers."""

    FLAGGED = "flagged"
    IMPORTED = "imported"
