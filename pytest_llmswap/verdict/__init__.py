"""Verdict, switching cost and statistics: pure functions from case results to summaries and verdicts."""
