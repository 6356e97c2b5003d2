"""The private grading engine: nothing outside :mod:`autograder` imports it.

- :mod:`~autograder.engine.sandbox`: the bubblewrap sandbox (limits, mounts, unprivileged user);
- :mod:`~autograder.engine.runner`: the only grading code that runs next to the student's code;
- :mod:`~autograder.engine.reaper`: the sandbox's trusted parent (forks runs, measures their memory);
- :mod:`~autograder.engine.supervisor`: launches runs, watches deadlines, reads outcomes;
- :mod:`~autograder.engine.grading`: builds a suite's checks, runs them, scores the grade cells.

This file stays import-free: the sandbox shows it (with runner.py, marker.py and reaper.py) to the runs.
"""
