"""Promotion: policies, gates, approvals."""
