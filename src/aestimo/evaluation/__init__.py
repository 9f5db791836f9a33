"""Metrics, the experts' source × source evaluation, the personalization summary, paired comparisons, the report."""
