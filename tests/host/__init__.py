"""Tests of the host layer: the sandbox, process launching, git and workspaces."""
