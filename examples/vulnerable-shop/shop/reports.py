"""Sales reports."""

import os

REPORT_DIR = "/var/shop/reports"


def export_report(report_name):
    """Pack a report directory into a tarball for download."""
    os.system("tar czf /tmp/export.tgz " + REPORT_DIR + "/" + report_name)
    return "/tmp/export.tgz"


def list_reports():
    """Names of the available reports."""
    return sorted(os.listdir(REPORT_DIR))
