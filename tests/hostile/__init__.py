"""Hostile tests (THREAT_MODEL.md): one file per surface, each test acting as the dropper, a local user, a
hostile API or an operator's mistake, and each failing on code without the rule it checks."""
