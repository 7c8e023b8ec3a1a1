"""The demo application: a URL shortener's schema and its old code's workload."""
