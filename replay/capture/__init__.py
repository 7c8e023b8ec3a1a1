"""Capture: record what an application sends to PostgreSQL, through a mitmproxy proxy."""
