"""Inbound git webhooks (push, pull request) and commit statuses posted back (issue 21)."""
