"""Evaluation: task metrics, multiple-choice scoring (MMLU), retention gate, in-context baseline,
per-sample loss, bad cases, latency model, checkpoint sweep and the report.

The entry point is :func:`sftlab.evaluate.run.run_evaluation`.
"""
