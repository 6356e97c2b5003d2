"""Grading pipeline for the course: hidden-test suites, sandboxed out-of-kernel grading,
and the TA entry point ``python -m autograder``. Never shipped to students."""
